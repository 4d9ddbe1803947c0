"""What BACKUP, VERIFY and RESTORE cost the statements beside them, per job.

A real `cairn serve` with load.py's namespace (`--preload` rows, flushed, a
few buffered) and no clients runs BACKUP (keep_last = 3), VERIFY and RESTORE
(AS a copy, replace) back to back, `--cycles` times. For each job: its wall
time, the server's CPU by part (main thread, other threads, the copier
processes; /proc), and how long a probe thread in the server waited for the
GIL in stretches over 3 ms (bench/gilprobe: a statement on the event loop
waits the same), with the code the other threads were in when the probe got
the GIL back, summed per site. The probe's own wait with nothing running is
the floor (printed as "between jobs").

    python bench/job_gil.py [--cycles 15] [--preload 50000] [--server-root CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)
from bench.load import server_cpu  # noqa: E402

JOBS = (("backup", "BACKUP DATABASE load TO 'loadbk' WITH (keep_last = 3)"),
        ("verify", "VERIFY BACKUP '{id}' IN 'loadbk'"),
        ("restore", "RESTORE DATABASE load FROM 'loadbk' AS load_copy "
                    "WITH (backup_id = '{id}', replace = true)"))
IDLE_FRAMES = ("threading.py", "thread.py:8", "selectors.py", "queue.py", "copier.py:91")


Window = tuple[str, float, float, dict[str, float]]  # kind, start, end, server CPU by part


def run(root: Path, cycles: int, preload: int, work: Path) -> tuple[list[Window], Path]:
    probe = work / "probe.jsonl"
    cfg = write_config(work / "cairn.toml", work / "backups", 0)
    srv = CairnProcess(work / "data", cfg, work / "server.log", root=root)
    srv.env["PYTHONPATH"] = f"{ROOT / 'bench' / 'gilprobe'}:{root}"
    srv.env["CAIRN_GIL_PROBE"] = str(probe)
    srv.start()
    windows: list[Window] = []
    try:
        srv.ok("CREATE NAMESPACE load; "
               "CREATE TABLE load.t (id BIGINT PRIMARY KEY, client INT, v TEXT)")
        rng = random.Random(8)
        for first in range(0, preload, 5000):
            values = ", ".join(f"({-(first + i) - 1}, -1, '{rng.randbytes(50).hex()}')"
                               for i in range(min(5000, preload - first)))
            srv.ok(f"INSERT INTO load.t VALUES {values}")
        srv.ok("FLUSH TABLE load.t")
        for i in range(20):  # a few buffered rows, as under load
            srv.ok(f"INSERT INTO load.t VALUES ({i}, 1, 'x')")
        time.sleep(0.5)
        for _ in range(cycles):
            backup_id = ""
            for job, text in JOBS:
                gap = time.time()
                time.sleep(0.2)  # the probe alone: the floor
                windows.append(("between jobs", gap, time.time(), {}))
                cpu0, start = server_cpu(srv.pid), time.time()
                rows = srv.ok(text.format(id=backup_id))
                end, cpu1 = time.time(), server_cpu(srv.pid)
                if job == "backup":
                    backup_id = rows[0]["rows"][0]["backup_id"]
                used = {k: v - cpu0.get(k, 0.0) for k, v in cpu1.items()}
                windows.append((job, start, end, used))
    finally:
        srv.stop()
    return windows, probe


def report(windows: list[Window], probe: Path) -> None:
    events = [json.loads(line) for line in probe.read_text().splitlines()] if probe.exists() else []
    late: dict[str, list[float]] = defaultdict(list)
    sites: dict[str, Counter[str]] = defaultdict(Counter)
    for at, seconds, stacks in events:
        kind = next((k for k, a, b, _ in windows if a <= at <= b + 0.002), None)
        if kind is None:
            continue
        late[kind].append(seconds)
        for name, frames in stacks.items():
            if name == "MainThread" or not frames or any(x in frames[-1] for x in IDLE_FRAMES):
                continue
            thread = name.rsplit("_", 1)[0]
            sites[kind][f"{thread}: " + " < ".join(reversed(frames[-3:]))] += seconds
    print("| job | jobs | wall, median ms | server CPU per job, median ms: main / other "
          "threads / copiers | GIL waits > 3 ms per job: count, sum ms | longest ms |")
    print("|---|---:|---:|---|---|---:|")
    for kind in ("backup", "verify", "restore", "between jobs"):
        mine = [w for w in windows if w[0] == kind]
        if not mine:
            continue
        n = len(mine)
        wall = statistics.median(b - a for _, a, b, _ in mine) * 1000
        parts = [] if kind in dict(JOBS) else ["–"]
        for part in ("main thread", "other", "child processes") if not parts else ():
            def of(used: dict[str, float], part: str = part) -> float:
                if part == "other":
                    return sum(v for k, v in used.items() if k.startswith("thread "))
                return used.get(part, 0.0)
            parts.append(f"{1000 * statistics.median(of(u) for *_, u in mine):.0f}")
        waits = late.get(kind, [])
        print(f"| {kind} | {n} | {wall:.0f} | {' / '.join(parts)} | {len(waits) / n:.1f}, "
              f"{1000 * sum(waits) / n:.1f} | {1000 * max(waits, default=0):.1f} |")
    for kind in ("backup", "verify", "restore"):
        n = sum(1 for w in windows if w[0] == kind) or 1
        print(f"\n{kind}: where the other threads were when the probe got the GIL back "
              "(ms per job)")
        for site, seconds in sites[kind].most_common(8):
            print(f"  {1000 * seconds / n:6.1f}  {site}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument("--preload", type=int, default=50_000)
    parser.add_argument("--server-root", default=str(ROOT),
                        help="the checkout the server runs from (another one for A/B runs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-jobgil-"))
    try:
        print(f"server from {args.server_root}, {args.cycles} cycles, preload {args.preload}, "
              f"load average {os.getloadavg()[0]:.2f}")
        windows, probe = run(Path(args.server_root), args.cycles, args.preload, work)
        report(windows, probe)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
