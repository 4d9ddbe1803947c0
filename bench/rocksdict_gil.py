"""Which rocksdict calls hold Python's GIL while RocksDB works (issue 15's
INSERT stalls): another thread inside such a call stops the event loop for
as long as the call takes, even while RocksDB waits for a disk or a mutex.

A thread spins, noting the longest gap between two of its loop iterations,
while this thread makes each call once on a scratch database (1 KB values).
A call that releases the GIL leaves gaps of about the switch interval (set
to 1 ms here) or what the CPUs' other work costs; one that holds it leaves a
gap as long as the call.

    python bench/rocksdict_gil.py [--mb 60] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from rocksdict import Checkpoint, Options, Rdict, WriteBatch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=60, help="MB written per write step")
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    sys.setswitchinterval(0.001)
    n = args.mb * 1000
    root = tempfile.mkdtemp(prefix="rocksdict-gil-", dir=args.dir)
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    db = Rdict(root + "/db", opts, column_families={"t": Options(raw_mode=True)})
    fam = db.get_column_family("t")
    handle = db.get_column_family_handle("t")
    gaps: list[tuple[float, float]] = []  # (from, to) of the spinner's gaps over 0.2 ms
    stop = threading.Event()

    def spinner() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > 0.0002:
                gaps.append((last, now))
            last = now

    def longest(t0: float, t1: float) -> float:
        """The spinner's longest gap inside [t0, t1] (the part inside)."""
        return max((min(b, t1) - max(a, t0) for a, b in gaps if b > t0 and a < t1),
                   default=0.0)

    value = os.urandom(1000)

    def key(i: int) -> bytes:
        return i.to_bytes(8, "big")

    def batch(first: int, count: int) -> WriteBatch:
        wb = WriteBatch(raw_mode=True)
        for i in range(first, first + count):
            wb.put(key(i), value, handle)
        return wb

    def scan() -> None:
        for _ in fam.items():
            pass

    def deletes() -> WriteBatch:
        wb = WriteBatch(raw_mode=True)
        for i in range(0, 10_000):
            wb.delete(key(i), handle)
        return wb

    big = batch(10 * n, n)
    ten_thousand = deletes()
    ranged = WriteBatch(raw_mode=True)
    ranged.delete_range(key(0), key(2 * n), handle)
    steps: list[tuple[str, Callable[[], object]]] = [
        (f"write: {args.mb} batches of 1,000 puts", lambda: [db.write(batch(i, 1000))
                                                             for i in range(0, n, 1000)]),
        (f"write: one batch of {n:,} puts ({args.mb} MB)", lambda: db.write(big)),
        ("write: one batch of 10,000 deletes", lambda: db.write(ten_thousand)),
        ("family flush(wait=True) (memtable to disk)", lambda: fam.flush(True)),
        ("write: one delete_range", lambda: db.write(ranged)),
        ("family compact_range(None, None)", lambda: fam.compact_range(None, None)),
        (f"write: {args.mb} batches of 1,000 puts (again)",
         lambda: [db.write(batch(20 * n + i, 1000)) for i in range(0, n, 1000)]),
        ("Checkpoint.create_checkpoint (flushes memtables)",
         lambda: Checkpoint(db).create_checkpoint(root + "/ck")),
        ("flush_wal(sync=True)", lambda: db.flush_wal(True)),
        ("scan: items() over the family", scan),
        ("get: 10,000 keys", lambda: [fam.get(key(20 * n + i)) for i in range(10_000)]),
    ]
    thread = threading.Thread(target=spinner, daemon=True)
    thread.start()
    print(f"rocksdict_gil: load {os.getloadavg()[0]:.2f}, switch interval 1 ms\n")
    print("| call | wall ms | longest gap of the other thread ms | holds the GIL? |")
    print("|---|---:|---:|---|")
    try:
        for name, fn in steps:
            time.sleep(0.05)
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            wall = t1 - t0
            time.sleep(0.005)
            gap = longest(t0, t1)
            held = gap >= 0.8 * wall and wall > 0.001
            print(f"| {name} | {wall * 1000:.1f} | {gap * 1000:.1f} "
                  f"| {'**yes**, for the whole call' if held else 'no'} |")
    finally:
        stop.set()
        thread.join()
        db.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
