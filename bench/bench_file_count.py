"""What a table's number of Parquet files costs its queries: Cairn never merges
a table's files, so each FLUSH adds one and a scan reads them all.

    python bench/bench_file_count.py [--files 1,10,100,400,1000] [--runs 5]

An in-process Engine on a fresh data dir (no server): one SHARED table
`u (k INT PRIMARY KEY, v INT)`, one row inserted and flushed a file at a time
up to each count; at each count, the median wall and CPU time (the process's,
DuckDB's threads included) of a full scan (`count(*)`), a point look-up by key
and a one-row UPDATE by key. Prints the git revision and the load average."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlglot  # noqa: E402
from sqlglot import exp  # noqa: E402

from catalog import Catalog, Namespace  # noqa: E402
from storage.config import EngineConfig  # noqa: E402
from storage.engine import Engine  # noqa: E402

QUERIES = ("SELECT count(*) AS c FROM app.u", "SELECT v FROM app.u WHERE k = 5",
           "UPDATE app.u SET v = v + 1 WHERE k = 0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", default="1,10,100,400,1000")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=Path(__file__).parent).stdout.strip()
    print(f"revision {rev}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "data" / "catalog")
        engine = Engine(catalog, Path(tmp) / "data", EngineConfig())
        catalog.put(Namespace("app"))
        engine.create_table("app", "u", "shared", [
            {"name": "k", "type": {"name": "INT", "params": ()}, "primary_key": True},
            {"name": "v", "type": {"name": "INT", "params": ()}}])

        def run(text: str) -> None:
            e = sqlglot.parse_one(text, read="duckdb")
            if isinstance(e, exp.Update | exp.Insert):
                engine.execute(e, None, "app")
            else:
                engine.query(e, None, "app").to_pylist()

        made = 0
        print(f"{'files':>6}  {'statement':40}  {'wall ms':>8}  {'cpu ms':>8}")
        for target in (int(n) for n in args.files.split(",")):
            while made < target:
                run(f"INSERT INTO app.u VALUES ({made}, {made})")
                engine.flush_table("app", "u")
                made += 1
            for q in QUERIES:
                walls, cpus = [], []
                for _ in range(args.runs):
                    w, c = time.perf_counter(), time.process_time()
                    run(q)
                    walls.append(time.perf_counter() - w)
                    cpus.append(time.process_time() - c)
                print(f"{target:>6}  {q[:40]:40}  {1000 * statistics.median(walls):8.1f}  "
                      f"{1000 * statistics.median(cpus):8.1f}", flush=True)
        engine.close()
        catalog.close()


if __name__ == "__main__":
    main()
