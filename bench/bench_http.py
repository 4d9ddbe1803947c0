"""HTTP request figures (issue 2): requests/s and p50/p99 latency of
`SELECT * FROM system.namespaces` and of `CREATE NAMESPACE <unique name>`, with 1
and 8 concurrent clients, over loopback against a real `cairn serve` process.

The client is aiohttp with keep-alive (one pooled connection per concurrent
client), in this process; client and server share the machine's CPUs, so with
8 clients the figure is what the whole box does, not the server alone. Each
case is preceded by a short warm-up; the SELECT cases run first, against 10
namespaces (so system.namespaces is not empty and does not grow meanwhile).
`server took` is the median of the server's own `took` (request handling
without the network and the client).

A last, diagnostic row repeats the one-client SELECT against a second server
started with `[server] query_timeout_seconds = 0` (no per-query timeout, so no
watchdog `threading.Timer` thread is started per SELECT): the difference is what
that timer costs.

Aim: p50 under 2 ms for the SELECT with one client.

    python bench/bench_http.py [--quick] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Server, load, machine, pct, print_table, session, sql

SELECT = "SELECT * FROM system.namespaces"
SEED_NAMESPACES = 10


async def one_case(
    url: str, make_sql: Callable[[int], str], requests: int, clients: int, warmup: int
) -> dict[str, Any]:
    """`requests` requests spread over `clients` concurrent keep-alive clients."""
    async with session(clients) as http:
        counter = iter(range(10**9))

        async def worker(limit: int, lat: list[float], took: list[float], base: int) -> None:
            while True:
                i = next(counter)
                if i >= limit:
                    return
                t0 = time.perf_counter()
                body = await sql(http, url, make_sql(base + i))
                lat.append((time.perf_counter() - t0) * 1000)
                took.append(float(body["took"]))

        await asyncio.gather(*[worker(warmup, [], [], 10**8) for _ in range(clients)])
        counter = iter(range(10**9))
        lat: list[float] = []
        took: list[float] = []
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(requests, lat, took, 0) for _ in range(clients)])
        wall = time.perf_counter() - t0
    return {
        "requests": len(lat),
        "rps": len(lat) / wall,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "max": max(lat),
        "took_p50": statistics.median(took),
    }


async def bench(url: str, requests: int, warmup: int) -> list[dict[str, Any]]:
    async with session(1) as http:
        for i in range(SEED_NAMESPACES):
            await sql(http, url, f"CREATE NAMESPACE seed_{i}")
    out = []
    for clients in (1, 8):
        r = await one_case(url, lambda i: SELECT, requests, clients, warmup)
        out.append({"case": "SELECT * FROM system.namespaces", "clients": clients, **r})
    for clients in (1, 8):
        tag = f"c{clients}"
        r = await one_case(
            url, lambda i, tag=tag: f"CREATE NAMESPACE ns_{tag}_{i}", requests, clients, warmup
        )
        out.append({"case": "CREATE NAMESPACE <unique>", "clients": clients, **r})
    return out


async def select_only(url: str, requests: int, warmup: int) -> dict[str, Any]:
    async with session(1) as http:
        for i in range(SEED_NAMESPACES):
            await sql(http, url, f"CREATE NAMESPACE seed_{i}")
    r = await one_case(url, lambda i: SELECT, requests, 1, warmup)
    return {"case": "SELECT * FROM system.namespaces (query_timeout_seconds = 0)",
            "clients": 1, **r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 requests per case (smoke run)")
    ap.add_argument("--requests", type=int, default=None, help="requests per case (default 2000)")
    args = ap.parse_args()
    requests = args.requests or (200 if args.quick else 2000)
    warmup = 20 if args.quick else 100
    load_start = load()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-http-", dir="/tmp"))
    try:
        srv = Server(tmp / "data")
        try:
            rows = asyncio.run(bench(srv.url, requests, warmup))
        finally:
            srv.stop()
        conf = tmp / "no-timeout.toml"
        conf.write_text("[server]\nquery_timeout_seconds = 0\n")
        srv = Server(tmp / "data2", config=conf)
        try:
            rows.append(asyncio.run(select_only(srv.url, requests, warmup)))
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"bench_http: {requests} requests per case (+{warmup} warm-up), loopback, "
          f"aiohttp keep-alive; {machine()}; {load_start} at the start, {load()} at the end")
    table = []
    for r in rows:
        aim = ""
        if r["case"] == SELECT and r["clients"] == 1:
            aim = f"p50 < 2 ms: {'met' if r['p50'] < 2 else 'MISSED'}"
        table.append([r["case"], r["clients"], f"{r['rps']:.0f}", f"{r['p50']:.2f}",
                      f"{r['p99']:.2f}", f"{r['max']:.1f}", f"{r['took_p50']:.2f}", aim])
    print_table(["request", "clients", "req/s", "p50 ms", "p99 ms", "max ms",
                 "server took p50 ms", "aim"], table)


if __name__ == "__main__":
    main()
