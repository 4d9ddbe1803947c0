"""The CPU an archiver's cycle costs, in one process, as the server runs it.

    python bench/archive_cycle_cpu.py [--changes 300] [--rounds 60]
    PYTHONPATH=/other/checkout python bench/archive_cycle_cpu.py   # A/B: that checkout's code

A change log on a real RocksDB catalog holds `--changes` one-row INSERT
statements (bench_archive's table); the cycle's CPU-bound steps run on them
`--rounds` times: the log read and the segment's encoding (blocks, zstd,
checksums, header). glibc's malloc thresholds are pinned as the server pins
them (storage/allocator.py), and the cycles are 5 ms apart, so caches are
as cold as in a server that runs one cycle a second among its writers (a
best-of-N of back-to-back cycles says less: it runs on warm caches). Prints
the mean thread CPU per cycle of each step and the minor page faults per
cycle (memory mapped afresh: glibc maps every block of 128 KiB or more). The
server's own figures under load are in /metrics (`archive_<step>_cpu`), which
`bench_archive.py --only overhead` prints: there the same cycle costs 2-3x
as much CPU, on a machine whose 2 CPUs the writers and the client share."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0]
                or str(Path(__file__).resolve().parent.parent))

from bench.archive_gil import logged_changes  # noqa: E402
from storage.archive import segment  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    with logged_changes(args.changes, "cairn-cycle-cpu-") as (log, hi, through):
        cpu: dict[str, list[float]] = {"read": [], "encode": []}
        faults = 0
        for _ in range(args.rounds):
            time.sleep(0.005)
            f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            t0 = time.thread_time()
            got = log.read("app", 0, hi)
            t1 = time.thread_time()
            name = segment.SegmentName(0, got[-1].lsn, 0, through)
            segment.encode("app", "ar-00000000000000000000", name, got, True, None)
            t2 = time.thread_time()
            faults += resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - f0
            cpu["read"].append(t1 - t0)
            cpu["encode"].append(t2 - t1)
        total = [r + e for r, e in zip(cpu["read"], cpu["encode"], strict=True)]
        root = os.environ.get("PYTHONPATH", "").split(":")[0] or "this checkout"
        print(f"cycle CPU, {args.changes} one-row changes, mean of {args.rounds} cycles "
              f"(code from {root}; load average {os.getloadavg()[0]:.2f}): "
              f"read {1000 * statistics.mean(cpu['read']):.3f} ms, "
              f"encode {1000 * statistics.mean(cpu['encode']):.3f} ms, "
              f"both {1000 * statistics.mean(total):.3f} ms "
              f"({1e6 * statistics.mean(total) / args.changes:.1f} us per change); "
              f"minor page faults per cycle {faults / args.rounds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
