"""PostgreSQL protocol figures (issue 14), side by side with HTTP in one run,
against one real `cairn serve` process:

1. point SELECT latency (`SELECT balance FROM bench.acct WHERE id = <n>`, one
   client, keep-alive): HTTP (aiohttp POST /api/sql) vs pgwire simple protocol
   (asyncpg `execute`, the text sent as is) vs pgwire extended protocol (asyncpg
   prepared statement, `id = $1` bound per call). All clients are asyncio in
   this process.
2. throughput of a custom script of one point SELECT and one INSERT per
   transaction: `pgbench -n -f script.sql -c C -j J -T T` at 1 and 8 clients
   vs the same two statements as two HTTP requests per transaction (aiohttp,
   C concurrent keep-alive clients, same duration). pgbench is C; the HTTP
   client is Python sharing the machine's CPUs with the server.

    python bench/bench_pgwire.py [--quick] [--seconds 20] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Server, load, machine, pct, print_table, session, sql

ROWS = 10_000
SELECT = "SELECT balance FROM bench.acct WHERE id = {}"
INSERT = "INSERT INTO bench.hist (aid, delta, note) VALUES ({}, {}, 'bench')"
SCRIPT = """\\set aid random(1, 10000)
\\set delta random(-5000, 5000)
SELECT balance FROM bench.acct WHERE id = :aid;
INSERT INTO bench.hist (aid, delta, note) VALUES (:aid, :delta, 'pgbench');
"""


async def seed(url: str) -> None:
    async with session(1) as http:
        await sql(http, url, "CREATE NAMESPACE bench")
        await sql(http, url, "CREATE TABLE bench.acct (id BIGINT PRIMARY KEY, balance BIGINT, "
                             "name TEXT)")
        await sql(http, url, f"INSERT INTO bench.acct SELECT range, range * 10, 'n' || range "
                             f"FROM range(1, {ROWS + 1})")
        await sql(http, url, "FLUSH TABLE bench.acct")
        await sql(http, url, "CREATE TABLE bench.hist (aid BIGINT, delta BIGINT, note TEXT)")


def summary(lat: list[float], wall: float) -> dict[str, Any]:
    return {"n": len(lat), "rate": len(lat) / wall, "p50": pct(lat, 50), "p99": pct(lat, 99)}


async def latency(url: str, pg_url: str, requests: int, warmup: int) -> list[list[Any]]:
    rng = random.Random(1)
    ids = [rng.randint(1, ROWS) for _ in range(requests + warmup)]
    rows = []
    async with session(1) as http:
        lat: list[float] = []
        t0 = time.perf_counter()
        for i, n in enumerate(ids):
            s = time.perf_counter()
            await sql(http, url, SELECT.format(n))
            if i >= warmup:
                lat.append((time.perf_counter() - s) * 1000)
        rows.append(["HTTP POST /api/sql", summary(lat, time.perf_counter() - t0)])
    conn = await asyncpg.connect(pg_url)
    try:
        lat = []
        t0 = time.perf_counter()
        for i, n in enumerate(ids):
            s = time.perf_counter()
            await conn.execute(SELECT.format(n))
            if i >= warmup:
                lat.append((time.perf_counter() - s) * 1000)
        rows.append(["pgwire simple query", summary(lat, time.perf_counter() - t0)])
        stmt = await conn.prepare(SELECT.format("$1"))
        lat = []
        t0 = time.perf_counter()
        for i, n in enumerate(ids):
            s = time.perf_counter()
            await stmt.fetch(n)
            if i >= warmup:
                lat.append((time.perf_counter() - s) * 1000)
        rows.append(["pgwire prepared, $1 bound", summary(lat, time.perf_counter() - t0)])
    finally:
        await conn.close()
    return [[name, r["n"], f"{r['rate']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}"]
            for name, r in rows]


async def http_tps(url: str, clients: int, seconds: float) -> dict[str, Any]:
    rng = random.Random(clients)
    done = failed = 0
    async with session(clients) as http:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                aid, delta = rng.randint(1, ROWS), rng.randint(-5000, 5000)
                try:
                    await sql(http, url, SELECT.format(aid))
                    await sql(http, url, INSERT.format(aid, delta))
                    done += 1
                except Exception:  # noqa: BLE001 - any failure counts as failed
                    failed += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        wall = time.perf_counter() - t0
    return {"tps": done / wall, "done": done, "failed": failed}


def pgbench(port: int, script: Path, clients: int, seconds: int) -> dict[str, Any]:
    threads = min(2, clients)
    proc = subprocess.run(
        ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-n", "-f", str(script),
         "-c", str(clients), "-j", str(threads), "-T", str(seconds), "cairn"],
        check=False, capture_output=True, text=True, timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    out = proc.stdout
    return {
        "tps": float(re.search(r"tps = ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "done": int(re.search(r"actually processed: (\d+)", out).group(1)),  # type: ignore[union-attr]
        "failed": int(re.search(r"failed transactions: (\d+)", out).group(1)),  # type: ignore[union-attr]
        "latency": float(re.search(r"latency average = ([\d.]+)", out).group(1)),  # type: ignore[union-attr]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 requests, 5 s runs (smoke run)")
    ap.add_argument("--seconds", type=int, default=None, help="pgbench -T (default 20)")
    ap.add_argument("--requests", type=int, default=None, help="point SELECTs (default 2000)")
    args = ap.parse_args()
    seconds = args.seconds or (5 if args.quick else 20)
    requests = args.requests or (300 if args.quick else 2000)
    warmup = 50 if args.quick else 200
    load_start = load()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-pgwire-", dir="/tmp"))
    try:
        srv = Server(tmp / "data", pgwire=True)
        pg_url = f"postgresql://bench@127.0.0.1:{srv.pg_port}/cairn"
        try:
            asyncio.run(seed(srv.url))
            lat_rows = asyncio.run(latency(srv.url, pg_url, requests, warmup))
            script = tmp / "script.sql"
            script.write_text(SCRIPT)
            tps_rows = []
            for clients in (1, 8):
                p = pgbench(srv.pg_port, script, clients, seconds)
                h = asyncio.run(http_tps(srv.url, clients, seconds))
                tps_rows.append([clients, f"{p['tps']:.1f}", p["failed"], f"{p['latency']:.2f}",
                                 f"{h['tps']:.1f}", f"{2 * h['tps']:.1f}", h["failed"]])
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"bench_pgwire: {machine()}; {load_start} at the start, {load()} at the end")
    print(f"\npoint SELECT, one client, {requests} requests (+{warmup} warm-up)")
    print_table(["protocol", "requests", "req/s", "p50 ms", "p99 ms"], lat_rows)
    print(f"\nSELECT + INSERT per transaction, {seconds} s per case")
    print_table(["clients", "pgbench TPS", "pgbench failed", "pgbench latency ms",
                 "HTTP TPS", "HTTP req/s", "HTTP failed"], tps_rows)


if __name__ == "__main__":
    main()
