"""What one client's large answer costs every other client (issue 15: stalls).

A server with a table of `--rows` rows (six columns, `_updated` included);
one client runs `SELECT * FROM big.t` (the whole table: 100,000 rows is
~13 MB of JSON) `--times` times while another sends point SELECTs back to
back. Printed per big SELECT: its wall time and size, and the probe's
requests, median and longest latency during it. Before, the answer's rows
were made into JSON values one at a time on the event loop, and dumped by
json.dumps there: the probe waited as long as that took.

`--server-root DIR` runs the server from another checkout (an A/B in one
sitting); the 1-minute load average is printed beside every figure.

    python bench/bench_big_answer.py [--rows 100000] [--times 3] [--server-root DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Server, load, revision, session, sql  # noqa: E402


async def probe(http: aiohttp.ClientSession, url: str, done: asyncio.Event,
                latencies: list[float]) -> None:
    """Point SELECTs back to back until `done`; each one's latency in ms."""
    while not done.is_set():
        t0 = time.perf_counter()
        await sql(http, url, "SELECT b FROM big.t WHERE id = 7")
        latencies.append((time.perf_counter() - t0) * 1000)


async def one(http: aiohttp.ClientSession, url: str, n: int) -> None:
    latencies: list[float] = []
    done = asyncio.Event()
    task = asyncio.create_task(probe(http, url, done, latencies))
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    async with http.post(url + "/api/sql", json={"sql": "SELECT * FROM big.t"}) as resp:
        body = await resp.read()
        status = resp.status
    took = time.perf_counter() - t0
    await asyncio.sleep(0.2)
    done.set()
    await task
    print(f"big SELECT {n + 1}: HTTP {status}, {len(body) / 1e6:.1f} MB in {took:.2f} s; "
          f"probe: {len(latencies)} requests, median {statistics.median(latencies):.1f} ms, "
          f"longest {max(latencies):.0f} ms ({load()})")


async def main(args: argparse.Namespace) -> None:
    root = Path(args.server_root) if args.server_root else ROOT
    tmp = Path(tempfile.mkdtemp(prefix="big-answer-"))
    server = Server(tmp / "data", root=root)
    try:
        print(f"server from {root} ({revision(root)}), {args.rows} rows, {load()}")
        async with session(2) as http:
            await sql(http, server.url, "CREATE NAMESPACE big")
            await sql(http, server.url, "CREATE TABLE big.t (id BIGINT PRIMARY KEY, a DOUBLE, "
                                        "b TEXT, c TEXT)")
            await sql(http, server.url, (
                f"INSERT INTO big.t SELECT i, i * 1.5, 'row ' || i, 'another column of text ' || i "
                f"FROM range({args.rows}) t(i)"))
            for n in range(args.times):
                await one(http, server.url, n)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--server-root", default=None)
    asyncio.run(main(parser.parse_args()))
