"""What the job history costs each job: the GIL-holding reads a BACKUP and a
job's end make of the `jobs` family, by history size.

A real catalog (RocksDB) with N finished job rows like load.py's, in a
temporary directory; per size, the median CPU time of the calls every job
makes: `resume.kept` (every BACKUP's release_for, and the minute's expiry
look), a job's end (its finished row written, then `JobRunner.job_ended` where it
exists, else `trim_soon`'s whole `trim_history`), and a whole `catalog.scan(Job)`. Runs in a
child process per `--root` so two checkouts compare in one sitting:

    python bench/job_history.py [--sizes 200,2000,10000] [--root CHECKOUT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
from catalog import Catalog, Job
from server import resume
from server.config import Config
from server.jobs import JobRunner
from server.state import Cairn

def cpu(fn, times=7):
    out = []
    for _ in range(times):
        a = time.thread_time()
        fn()
        out.append(time.thread_time() - a)
    return 1000 * statistics.median(out)

sizes = json.loads(sys.argv[1])
result = {}
with tempfile.TemporaryDirectory(dir=sys.argv[2]) as tmp:
    for n in sizes:
        cfg = Config()
        cat = Catalog(Path(tmp) / f"cat{n}")
        batch = cat.batch()
        for i in range(n):
            batch.put(Job(f"job-{i:08d}", "backup", status="completed", namespace="load",
                          target="file:///tmp/backups/loadbk",
                          statement="BACKUP DATABASE load TO 'loadbk' WITH (keep_last = 3)",
                          started_at="2026-12-02T10:00:00.000Z",
                          finished_at="2026-12-02T10:00:00.080Z", fraction_completed=1.0,
                          files_done=3, files_total=3, bytes_done=4_000_000,
                          bytes_total=4_000_000, rows=50_000,
                          result={"backup_id": f"bk-{i}", "rows": 50_000, "files": 3,
                                  "bytes": 4_000_000, "dropped": []}, node_id="n1"))
        batch.commit()
        state = Cairn(cfg, cat)
        runner = JobRunner(state)
        runner.trim_history()
        trim = runner.job_ended if hasattr(runner, "job_ended") else runner.trim_history
        if hasattr(runner, "job_ended"):
            runner.trim_soon = runner.trim_history  # run inline, as the background task would
        ended = [n]

        def end():
            # A job's end: its finished row, then what _drive does after it.
            ended[0] += 1
            cat.put(Job(f"job-{ended[0]:08d}", "verify", status="completed",
                        finished_at="2026-12-02T10:00:01.000Z"))
            trim()
        result[n] = {"kept": cpu(lambda: resume.kept(state)), "job end": cpu(end),
                     "scan": cpu(lambda: cat.scan(Job))}
        state.close()
        cat.close()
print(json.dumps(result))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000,10000")
    parser.add_argument("--root", action="append", default=[])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    roots = args.root or [str(ROOT)]
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| checkout | history rows | resume.kept ms | a job's end ms | scan(Job) ms |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for root in roots:
            env = {**os.environ, "PYTHONPATH": root}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sizes), tmp],
                                 env=env, cwd=root, check=True, capture_output=True, text=True)
            for n, f in json.loads(out.stdout.strip().splitlines()[-1]).items():
                print(f"| {root} | {n} | {f['kept']:.2f} | {f['job end']:.2f} | {f['scan']:.1f} |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    start = time.time()
    code = main()
    print(f"{time.time() - start:.0f} s")
    sys.exit(code)
