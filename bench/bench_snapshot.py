"""What a backup's snapshot costs the writers beside it, in-process (issue 15).

One thread runs `--inserts` single-row INSERTs into `load.events` one after
the other (wall time each); another takes `Engine.snapshot({"load": None})`
of the namespace back to back and releases it (what BACKUP does first: copy
references under the table locks, then export the buffered rows as Parquet).
The buffer grows from `--buffered` rows as the INSERTs land. Printed: the
INSERTs' p50 / p99 / max alone and during the snapshots, the snapshots' wall
and thread CPU time (median) and the longest hold of a table lock by the
snapshot. No server and no copy of files: only the snapshot's share of the
writers' stalls (the GIL and the table locks), so it is visible on a busy
machine.

`--root DIR` imports Cairn from another checkout (an A/B in one sitting);
the 1-minute load average is printed beside every figure.

    python bench/bench_snapshot.py [--buffered 2000] [--inserts 2000] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buffered", type=int, default=2_000)
    ap.add_argument("--inserts", type=int, default=2_000)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    import sqlglot

    from catalog import Catalog, Namespace
    from storage.config import EngineConfig
    from storage.engine import Engine
    from storage.timing import TIMINGS, watch_gc

    rev = subprocess.run(["git", "-C", args.root, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-snapshot-", dir=args.dir))
    catalog = Catalog(tmp / "catalog")
    engine = Engine(catalog, tmp, EngineConfig(flush_rows=10**9))
    n = [0]

    def insert() -> float:
        e = sqlglot.parse_one(f"INSERT INTO load.events (n, note) VALUES ({n[0]}, 'event {n[0]}')",
                              read="duckdb")
        n[0] += 1
        t0 = time.perf_counter()
        engine.execute(e, None, "load")
        return (time.perf_counter() - t0) * 1000

    watch_gc()  # as the server does: GC passes are timed
    try:
        catalog.put(Namespace("load"))
        engine.create_table("load", "events", "shared", [  # bench_writer.py's table
            {"name": "n", "type": {"name": "BIGINT", "params": ()}},
            {"name": "note", "type": {"name": "TEXT", "params": ()}}])
        for _ in range(args.buffered):
            insert()
        load0 = os.getloadavg()[0]
        alone = [insert() for _ in range(args.inserts)]
        load1 = os.getloadavg()[0]
        stop = threading.Event()
        took: list[tuple[float, float]] = []

        def snapshots() -> None:
            while not stop.is_set():
                t0, c0 = time.perf_counter(), time.thread_time()
                engine.snapshot({"load": None}).release()
                took.append((time.perf_counter() - t0, time.thread_time() - c0))

        thread = threading.Thread(target=snapshots)
        thread.start()
        try:
            during = [insert() for _ in range(args.inserts)]
        finally:
            stop.set()
            thread.join()
        load2 = os.getloadavg()[0]
        holds: dict[Any, Any] = {k: v for k, v in TIMINGS.longest.items()
                                 if k[0] == "table" and k[1].startswith("locked:")}
        hold = max(holds.values(), key=lambda h: h.seconds) if holds else None
        print(f"bench_snapshot: Cairn from {args.root} ({rev}), {args.buffered} rows buffered "
              f"before, {args.inserts} INSERTs each way")
        print("\n| figure | p50 / p99 / max ms | load avg |\n|---|---|---|")
        for label, xs, la in (
                ("single-row INSERT, alone", alone, (load0, load1)),
                ("single-row INSERT, snapshots back to back", during, (load1, load2))):
            print(f"| {label} | {pct(xs, 50):.2f} / {pct(xs, 99):.2f} / {max(xs):.2f} "
                  f"| {la[0]:.2f} / {la[1]:.2f} |")
        if took:
            print(f"| snapshots taken: {len(took)}, wall / thread CPU each (median) "
                  f"| {statistics.median(w for w, _ in took) * 1000:.1f} / "
                  f"{statistics.median(c for _, c in took) * 1000:.1f} ms | |")
        if hold is not None:
            print(f"| longest table-lock hold by the snapshot (its CPU) "
                  f"| {hold.seconds * 1000:.2f} ({hold.cpu_seconds * 1000:.2f}) ms | |")
        for gen, h in sorted(TIMINGS.gc.items()):
            print(f"| GC passes of generation {gen}: {h.n}, longest | {h.peak * 1000:.2f} ms | |")
    finally:
        engine.close()
        catalog.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
