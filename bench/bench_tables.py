"""Tables-and-rows figures, in one run:

- single-row INSERT and point SELECT latency (p50/p99) over HTTP against a real
  `cairn serve` process, one keep-alive connection (point SELECT on the flushed
  table, then again with one row left in the buffer), and `SELECT * FROM
  system.namespaces`;
- bulk INSERT rows/s with 1000-row statements over HTTP;
- `SELECT count(*), sum(x)` over a 10M-row flushed table, through Cairn (engine
  and HTTP) against DuckDB reading the same Parquet files directly.

    python bench/bench_tables.py [--rows 10000000] [--ops 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog import Catalog, DataFile, Namespace  # noqa: E402
from server.config import StorageConfig  # noqa: E402
from storage.engine import Engine  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir),
             "--port", str(self.port), "--pg-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(ROOT),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("cairn listening"), line
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port)

    def sql(self, text: str) -> dict[str, Any]:
        self.conn.request("POST", "/api/sql", body=json.dumps({"sql": text}),
                          headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        body = json.loads(resp.read())
        if resp.status != 200:
            raise RuntimeError(body)
        return body

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(30)


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def build_big(data_dir: Path, rows: int, chunk: int = 1_000_000) -> list[str]:
    """A 10M-row SHARED table `bench.big (x BIGINT, y DOUBLE)`, flushed, built
    with the engine directly (loading it through HTTP would only time HTTP)."""
    catalog = Catalog(data_dir / "catalog")
    engine = Engine(catalog, data_dir, StorageConfig(flush_rows=10**9))
    catalog.put(Namespace("bench"))
    cols = [{"name": "x", "type": {"name": "BIGINT"}}, {"name": "y", "type": {"name": "DOUBLE"}}]
    t = engine.create_table("bench", "big", "shared", cols)
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        xs = pa.array(range(done, done + n), pa.int64())
        engine.insert_arrow("bench", "big", pa.table({"x": xs, "y": pa.compute.multiply(xs, 0.5)}))
        engine.flush_table("bench", "big")
        done += n
    paths = [str(data_dir / f.path) for f in catalog.scan(DataFile, t.uid)]
    engine.close()
    catalog.close()
    return paths


def compare_count_sum(data_dir: Path, paths: list[str], runs: int = 11) -> dict[str, float]:
    """Cairn's engine and a plain DuckDB (same threads and memory limit, default
    settings otherwise) over the same files, alternating, in one process."""
    cfg = StorageConfig()
    catalog = Catalog(data_dir / "catalog")
    engine = Engine(catalog, data_dir, cfg)
    con = duckdb.connect(
        config={"threads": cfg.duckdb_threads, "memory_limit": cfg.duckdb_memory_limit}
    )
    files = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    raw_q = f"SELECT count(*), sum(x) FROM read_parquet({files})"
    q = sqlglot.parse_one("SELECT count(*) AS n, sum(x) AS s FROM bench.big", read="duckdb")
    assert con.sql(raw_q).fetchall()[0][0] == engine.query(q, None, None).column(0)[0].as_py()
    cached = duckdb.connect(config={"threads": cfg.duckdb_threads,
                                    "memory_limit": cfg.duckdb_memory_limit})
    cached.execute("SET parquet_metadata_cache = true")  # as Cairn sets it
    raw: list[float] = []
    raw_cached: list[float] = []
    eng: list[float] = []
    for _ in range(runs):
        raw += timed(lambda _: con.sql(raw_q).fetchall(), 1)
        raw_cached += timed(lambda _: cached.sql(raw_q).fetchall(), 1)
        eng += timed(lambda _: engine.query(q, None, None), 1)
    engine.close()
    catalog.close()
    return {"duckdb_direct": statistics.median(raw),
            "duckdb_direct_metadata_cache": statistics.median(raw_cached),
            "cairn_engine": statistics.median(eng)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--bulk", type=int, default=100, help="1000-row statements")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    data = tmp / "data"
    figures: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        paths = build_big(data, args.rows)
        figures["load_10m_s"] = round(time.perf_counter() - t0, 1)
        srv = Server(data)
        try:
            srv.sql("CREATE TABLE bench.kv (id BIGINT PRIMARY KEY, v TEXT)")
            ins = timed(lambda i: srv.sql(f"INSERT INTO bench.kv VALUES ({i}, 'v{i}')"), args.ops)
            figures["insert_1row_ms"] = {"p50": round(pct(ins, 50), 3),
                                         "p99": round(pct(ins, 99), 3)}
            srv.sql("FLUSH TABLE bench.kv")
            sel = timed(lambda i: srv.sql(f"SELECT * FROM bench.kv WHERE id = {i * 7 % args.ops}"),
                        args.ops)
            figures["point_select_ms"] = {"p50": round(pct(sel, 50), 3),
                                          "p99": round(pct(sel, 99), 3)}
            srv.sql(f"INSERT INTO bench.kv VALUES ({args.ops}, 'buffered')")
            sel = timed(lambda i: srv.sql(f"SELECT * FROM bench.kv WHERE id = {i * 7 % args.ops}"),
                        args.ops)
            figures["point_select_buffer_ms"] = {"p50": round(pct(sel, 50), 3),
                                                 "p99": round(pct(sel, 99), 3)}
            sys_q = timed(lambda i: srv.sql("SELECT * FROM system.namespaces"), args.ops)
            figures["system_select_ms"] = {"p50": round(pct(sys_q, 50), 3),
                                           "p99": round(pct(sys_q, 99), 3)}
            srv.sql("CREATE TABLE bench.bulk (a BIGINT, b TEXT, c DOUBLE)")
            stmts = [
                "INSERT INTO bench.bulk VALUES " + ", ".join(
                    f"({k * 1000 + j}, 'row {j}', {j}.5)" for j in range(1000))
                for k in range(args.bulk)
            ]
            t0 = time.perf_counter()
            for s in stmts:
                srv.sql(s)
            figures["bulk_insert_rows_per_s"] = round(args.bulk * 1000 / (time.perf_counter() - t0))
            srv.sql("FLUSH ALL TABLES IN bench")  # no automatic flush running meanwhile
            q = "SELECT count(*) AS n, sum(x) AS s FROM bench.big"
            body = srv.sql(q)
            assert body["results"][0]["rows"][0]["n"] == args.rows
            over_http = statistics.median(timed(lambda _: srv.sql(q), 11))
        finally:
            srv.stop()
        cmp = compare_count_sum(data, paths)
        raw = cmp["duckdb_direct"]
        figures["count_sum_10m_ms"] = {
            "files": len(paths),
            "duckdb_direct": round(raw, 2),
            "duckdb_direct_metadata_cache": round(cmp["duckdb_direct_metadata_cache"], 2),
            "cairn_engine": round(cmp["cairn_engine"], 2),
            "cairn_http": round(over_http, 2),
            "ratio_engine": round(cmp["cairn_engine"] / raw, 2),
            "ratio_http": round(over_http / raw, 2),
            "ratio_engine_vs_cached": round(
                cmp["cairn_engine"] / cmp["duckdb_direct_metadata_cache"], 2
            ),
        }
        figures["machine"] = {"cpus": os.cpu_count(), "duckdb": duckdb.__version__}
        print(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
