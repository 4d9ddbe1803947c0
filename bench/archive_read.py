"""The change log's read as the archiver runs it, in one process: thread CPU
of `ChangeLog.read_raw` over `--changes` logged one-row INSERTs (the table
of bench_archive), inside `steps.pacing()`, `--rounds` reads 5 ms apart.

    python bench/archive_read.py [--changes 1500] [--rounds 60]
    PYTHONPATH=/other/checkout python bench/archive_read.py   # A/B: that checkout's code

1,500 is one cycle's worth at ~1,500 writes/s (a quiet machine's rate under
16 writers); the read holds the GIL while rocksdict iterates."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0]
                or str(Path(__file__).resolve().parent.parent))

from bench.archive_gil import logged_changes  # noqa: E402
from storage.archive.steps import pacing  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    with logged_changes(args.changes, "cairn-archive-read-") as (log, hi, _):
        cpu = []
        for _ in range(args.rounds):
            time.sleep(0.005)
            t = time.thread_time()
            with pacing():
                raw = log.read_raw("app", 0, hi)
            cpu.append(time.thread_time() - t)
            assert raw is not None and len(raw.entries) == args.changes
        root = os.environ.get("PYTHONPATH", "").split(":")[0] or "this checkout"
        print(f"read_raw of {args.changes} changes, {args.rounds} reads (code from {root}; "
              f"load average {os.getloadavg()[0]:.2f}): mean {1000 * statistics.mean(cpu):.3f} ms,"
              f" best {1000 * min(cpu):.3f} ms, {1e6 * statistics.mean(cpu) / args.changes:.2f}"
              " us per change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
