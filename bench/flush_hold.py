"""How long a flush holds its table's lock (issue 15, writer stalls).

Every writer of a table waits for its lock, so what a flush does under it is a
stall for each INSERT that arrives meanwhile. In-process (no HTTP): `--rows`
single-row INSERTs (`Engine.execute` of a parsed statement, as the server runs
them), then a flush, `--rounds` times; printed per round: the flush's wall
time and its hold of the table lock while it registers the file and takes the
batches off (`flush_register` in `storage.timing.TIMINGS`, /metrics'
`cairn_phase_seconds`). With `--root DIR` the engine is imported from another
checkout (an A/B in one sitting).

    python bench/flush_hold.py [--rows 10000] [--rounds 3] [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--root", default=str(ROOT), help="checkout to import the engine from")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    import sqlglot

    from catalog import Catalog, Namespace
    from storage.config import EngineConfig
    from storage.engine import Engine
    from storage.timing import TIMINGS

    work = Path(tempfile.mkdtemp(prefix="flush_hold-"))
    try:
        catalog = Catalog(work / "data" / "catalog")
        engine = Engine(catalog, work / "data", EngineConfig(flush_rows=10 ** 9))
        catalog.put(Namespace("app"))
        engine.create_table("app", "t", "shared", [
            {"name": "id", "type": {"name": "BIGINT", "params": ()}, "primary_key": True},
            {"name": "v", "type": {"name": "TEXT", "params": ()}}])
        print(f"engine from {args.root}; {args.rows:,} single-row INSERTs, then a flush")
        print("| round | flush, ms | table lock held to register, ms |")
        print("|---:|---:|---:|")
        for r in range(args.rounds):
            for i in range(args.rows):
                engine.execute(sqlglot.parse_one(
                    f"INSERT INTO app.t VALUES ({r * 10 ** 9 + i}, 'value {i}')",
                    read="duckdb"), None, "app")
            before = TIMINGS.copy()["phases"].get("flush_register")
            n0, t0 = (before.n, before.total) if before else (0, 0.0)
            start = time.perf_counter()
            engine.flush_table("app", "t")
            took = time.perf_counter() - start
            after = TIMINGS.copy()["phases"]["flush_register"]
            held = (after.total - t0) / max(1, after.n - n0)
            print(f"| {r + 1} | {took * 1e3:.1f} | {held * 1e3:.2f} |")
        engine.close()
        catalog.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
