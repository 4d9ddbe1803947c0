"""What a BACKUP's job-process part costs in CPU, in-process (issue 15).

A BACKUP's job process writes the snapshot's buffered rows as Parquet, looks
up and stores every file, writes the manifest, then drops the backups past
keep_last. On 2 CPUs that CPU is taken beside the server's statements, and
timed through a real server it drifts with the machine by ±20 %
(`backup_shapes.py`). Here one process builds T tables of F flushed files
and one buffered row each (`--shapes TxF`), then per round takes a snapshot,
pickles its image there and back (as the job process gets it) and times
`write_backup` + `keep_newest(keep_last = 3)` alone: the process's CPU
(every thread's, `time.process_time`) and wall time, medians of `--rounds`.
`--root` imports another checkout, so two runs alternate for an A/B.

    python bench/job_cpu.py [--shapes 50x2,1x200,1x5] [--rounds 40] [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="50x2,1x200,1x5")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--root", default=str(HERE), help="the checkout to import Cairn from")
    ap.add_argument("--dir", default=None, help="where the data and target go (default: TMPDIR)")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    sys.path.insert(1, str(HERE))
    import sqlglot

    from bench.bench_give_way import BenchWork
    from catalog import Catalog, Namespace
    from server.config import StorageConfig
    from storage.backup import Repository, resolve_target, write_backup
    from storage.backup.drops import keep_newest
    from storage.engine import Engine

    print(f"Cairn from {args.root}; {args.rounds} rounds a shape, medians; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| tables x files | job CPU, ms | wall, ms |")
    print("|---|---:|---:|")
    for spec in args.shapes.split(","):
        tables, files = (int(x) for x in spec.lower().split("x"))
        tmp = Path(tempfile.mkdtemp(prefix="cairn-job-cpu-", dir=args.dir))
        try:
            catalog = Catalog(tmp / "data" / "catalog")
            engine = Engine(catalog, tmp / "data", StorageConfig())
            catalog.put(Namespace("s"))
            for t in range(tables):
                engine.create_table("s", f"t{t}", "shared", [
                    {"name": "id", "type": {"name": "BIGINT", "params": []}, "primary_key": True},
                    {"name": "v", "type": {"name": "TEXT", "params": []}}])
                for f in range(files):
                    values = ", ".join(f"({f * 100 + i}, 'value {i}')" for i in range(100))
                    engine.execute(sqlglot.parse_one(f"INSERT INTO s.t{t} VALUES {values}",
                                                     read="duckdb"), None, "s")
                    engine.flush_table("s", f"t{t}")
                engine.execute(sqlglot.parse_one(f"INSERT INTO s.t{t} VALUES (-1, 'buffered')",
                                                 read="duckdb"), None, "s")
            repo = Repository(resolve_target("bk", [str(tmp / "backups")], {}))
            work = BenchWork(None)
            cpus, walls = [], []
            for r in range(args.rounds + 1):
                with engine.snapshot({"s": None}, defer_export=True) as snap:
                    (image,) = snap.namespaces
                    image = pickle.loads(pickle.dumps(image))
                    c0, w0 = time.process_time(), time.perf_counter()
                    write_backup(repo, image, f"b{r:05d}", snapshot_at=snap.snapshot_at,
                                 label=None, work=work)
                    keep_newest(repo, "s", 3, work)
                    c1, w1 = time.process_time(), time.perf_counter()
                if r:  # the first made the target and stored every file
                    cpus.append(c1 - c0)
                    walls.append(w1 - w0)
            engine.close()
            catalog.close()
            print(f"| {tables} x {files} | {statistics.median(cpus) * 1e3:.1f} | "
                  f"{statistics.median(walls) * 1e3:.1f} |", flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
