"""CPU per point SELECT, in-process (issue 15): `Engine.query` of
`SELECT id, client, v FROM load.t WHERE id = <key>` (bench/load.py's SELECT)
on a table of `--preload` flushed rows and `--buffered` single-row INSERTs
still in the write buffer, for keys in the buffer (answered off the snapshot,
no DuckDB) and keys in the files (DuckDB), and for buffered keys with an
INSERT before each lookup (load.py's mix: the buffer grows between lookups);
last, an INSERT of a buffered key (its exact duplicate-key check).
Parsing is done before the clock;
each figure is the thread CPU of the call (median and mean of `--queries`),
and, for the buffered keys, of the snapshot alone (`take_snapshot` and its
point cut), best of `--repeats` passes. No server, no HTTP: the figure is the
storage side of a point lookup.

`--root DIR` imports Cairn from another checkout (an A/B in one sitting);
the 1-minute load average is printed beside every figure.

    python bench/bench_point.py [--preload 50000] [--buffered 5000] [--queries 2000] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cpu_us(fn: Any) -> float:
    t0 = time.thread_time()
    fn()
    return (time.thread_time() - t0) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preload", type=int, default=50_000)
    ap.add_argument("--buffered", type=int, default=5_000)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    import sqlglot

    from catalog import Catalog, Namespace
    from catalog.errors import AlreadyExists
    from storage.config import EngineConfig
    from storage.engine import Engine
    from storage.query import take_snapshot

    rev = subprocess.run(["git", "-C", args.root, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-point-", dir=args.dir))
    catalog = Catalog(tmp / "catalog")
    engine = Engine(catalog, tmp, EngineConfig(flush_rows=10**9))
    try:
        catalog.put(Namespace("load"))
        engine.create_table("load", "t", "shared", [  # load.py's table
            {"name": "id", "type": {"name": "BIGINT", "params": ()}, "primary_key": True},
            {"name": "client", "type": {"name": "INT", "params": ()}},
            {"name": "v", "type": {"name": "TEXT", "params": ()}}])
        payload = random.Random(1).randbytes(32).hex()
        for first in range(0, args.preload, 1000):
            values = ", ".join(f"({i}, 0, '{payload}')"
                               for i in range(first, min(first + 1000, args.preload)))
            engine.execute(sqlglot.parse_one(f"INSERT INTO load.t VALUES {values}",
                                             read="duckdb"), None, "load")
        if args.preload:
            engine.flush_table("load", "t")
        base = 10**9
        for i in range(args.buffered):
            engine.execute(sqlglot.parse_one(
                f"INSERT INTO load.t VALUES ({base + i}, 1, '{payload}')", read="duckdb"),
                None, "load")
        rng = random.Random(2)
        st = engine.state("load", "t")

        def lookups(keys: list[int]) -> list[float]:
            trees = [sqlglot.parse_one(f"SELECT id, client, v FROM load.t WHERE id = {k}",
                                       read="duckdb") for k in keys]
            out = []
            for e in trees:
                out.append(cpu_us(lambda e=e: engine.query(e, None, "load", owned=True)))
            return out

        fresh = [base + args.buffered]

        def mixed(keys: list[int]) -> list[float]:
            """load.py's mix: an INSERT (not timed) before each lookup."""
            trees = [sqlglot.parse_one(f"SELECT id, client, v FROM load.t WHERE id = {k}",
                                       read="duckdb") for k in keys]
            out = []
            for e in trees:
                engine.execute(sqlglot.parse_one(
                    f"INSERT INTO load.t VALUES ({fresh[0]}, 1, '{payload}')", read="duckdb"),
                    None, "load")
                fresh[0] += 1
                out.append(cpu_us(lambda e=e: engine.query(e, None, "load", owned=True)))
            return out

        def duplicates(keys: list[int]) -> list[float]:
            """An INSERT of a buffered key: ALREADY_EXISTS from the exact key check."""
            trees = [sqlglot.parse_one(f"INSERT INTO load.t VALUES ({k}, 2, 'x')", read="duckdb")
                     for k in keys]
            out = []
            for e in trees:
                def one(e: Any = e) -> None:
                    try:
                        engine.execute(e, None, "load")
                    except AlreadyExists:
                        return
                    raise AssertionError("a buffered key was inserted again")
                out.append(cpu_us(one))
            return out

        def snapshots(keys: list[int]) -> list[float]:
            out = []
            for k in keys:
                def one(k: int = k) -> None:
                    _, token = take_snapshot(st, None, engine.files, {"id": k})
                    engine.files.unpin(token)
                out.append(cpu_us(one))
            return out

        n = args.queries
        buffered = [base + rng.randrange(args.buffered) for _ in range(n)] if args.buffered else []
        flushed = [rng.randrange(args.preload) for _ in range(n)] if args.preload else []
        print(f"bench_point: Cairn from {args.root} ({rev}), preload {args.preload} rows flushed, "
              f"{args.buffered} buffered, {n} lookups a kind, best of {args.repeats}")
        print("\n| CPU per point SELECT (in-process) | median µs | mean µs | load avg |")
        print("|---|---:|---:|---:|")
        for label, keys, fn in (("key in the buffer: `Engine.query`", buffered, lookups),
                                ("key in the buffer: the snapshot alone", buffered, snapshots),
                                ("key in the buffer, an INSERT before each (load.py's mix)",
                                 buffered, mixed),
                                ("key in a file: `Engine.query` (DuckDB)", flushed, lookups),
                                ("INSERT of a buffered key (ALREADY_EXISTS, the exact key check)",
                                 buffered, duplicates)):
            if not keys:
                continue
            fn(keys[:50])  # warm-up
            runs = [fn(keys) for _ in range(args.repeats)]
            best = min(runs, key=statistics.mean)
            print(f"| {label} | {statistics.median(best):.0f} | {statistics.mean(best):.0f} "
                  f"| {os.getloadavg()[0]:.2f} |")
    finally:
        engine.close()
        catalog.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
