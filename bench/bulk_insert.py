"""One client's big INSERT against every other client's small ones (issue 15).

For each checkout (this one, and `--before`, e.g. main in a detached
worktree; alternated in one sitting), a server is started, and for each row
count one client sends `INSERT INTO a.t VALUES (i, i.5, 'text number i'), ...`
over HTTP and then over pgwire (asyncpg, simple protocol) while another client
sends single-row INSERTs over HTTP back to back. Printed per checkout, row
count and protocol: the bulk statement's wall time, the longest single-row
INSERT that overlapped it, and how many of them ran meanwhile; then the parse
time of the same text in that checkout's parser (a child process), and the
load average beside each figure (the machine is shared: figures are A/B in
one sitting, not absolute).

    python bench/bulk_insert.py --before /tmp/bulk-base [--rows 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, Server, load, machine, print_table, session, sql  # noqa: E402


def bulk_text(n: int, first: int) -> str:
    return "INSERT INTO a.t VALUES " + ", ".join(
        f"({i}, {i}.5, 'text number {i}')" for i in range(first, first + n))


PARSE = """
import sys, time
from sqlgrammar import parser
text = sys.stdin.read()
t0 = time.perf_counter(); parser.parse_script(text); print(time.perf_counter() - t0)
"""


def parse_seconds(root: Path, text: str) -> float:
    out = subprocess.run([sys.executable, "-c", PARSE], input=text, capture_output=True,
                         text=True, cwd=str(root), env={**os.environ, "PYTHONPATH": str(root)},
                         check=True)
    return float(out.stdout.strip())


async def probe(http: aiohttp.ClientSession, url: str, stop: asyncio.Event,
                samples: list[tuple[float, float]], start_id: int) -> None:
    """Single-row INSERTs back to back: (start, end) perf_counter of each."""
    i = start_id
    while not stop.is_set():
        t0 = time.perf_counter()
        await sql(http, url, f"INSERT INTO a.p VALUES ({i}, 'probe')")
        samples.append((t0, time.perf_counter()))
        i += 1


async def one_checkout(label: str, root: Path, counts: list[int], tmp: Path) -> list[list[Any]]:
    srv = Server(tmp / f"data-{label}", pgwire=True, root=root)
    rows: list[list[Any]] = []
    try:
        async with session(4) as http:
            await sql(http, srv.url, "CREATE NAMESPACE a; "
                      "CREATE TABLE a.t (id BIGINT PRIMARY KEY, d DOUBLE, s TEXT); "
                      "CREATE TABLE a.p (id BIGINT PRIMARY KEY, v TEXT)")
            pg = await asyncpg.connect(f"postgresql://bench@127.0.0.1:{srv.pg_port}/cairn")
            first, probe_id = 0, 0
            for n in counts:
                for proto in ("http", "pgwire"):
                    text = bulk_text(n, first)
                    first += n
                    body = json.dumps({"sql": text}).encode()
                    samples: list[tuple[float, float]] = []
                    stop = asyncio.Event()
                    task = asyncio.create_task(probe(http, srv.url, stop, samples, probe_id))
                    await asyncio.sleep(0.5)  # the probe's own pace first
                    t0 = time.perf_counter()
                    if proto == "http":
                        async with http.post(srv.url + "/api/sql", data=body, headers={
                                "Content-Type": "application/json"}) as resp:
                            answer = await resp.json()
                            assert resp.status == 200, answer
                    else:
                        await pg.execute(text)
                    t1 = time.perf_counter()
                    await asyncio.sleep(0.2)
                    stop.set()
                    await task
                    probe_id += len(samples) + 1
                    during = [(b - a) * 1000 for a, b in samples if b > t0 and a < t1]
                    worst = max(during) if during else (t1 - t0) * 1000
                    rows.append([label, n, proto, f"{t1 - t0:.2f} s", f"{worst:.0f} ms",
                                 len(during), load()])
            await pg.close()
    finally:
        srv.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True, help="checkout to compare with")
    ap.add_argument("--rows", default="1000,10000,50000")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    counts = [int(x) for x in args.rows.split(",")]
    print(f"bulk_insert: {machine()}; {load()}")
    checkouts = [("before", args.before.resolve()), ("after", ROOT)]
    table: list[list[Any]] = []
    parse_rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="cairn-bulk-", dir="/tmp") as d:
        for r in range(args.rounds):
            for label, root in (checkouts if r % 2 == 0 else checkouts[::-1]):
                table += asyncio.run(one_checkout(f"{label}{r}", root, counts, Path(d)))
        for n in counts:
            text = bulk_text(n, 0)
            for label, root in checkouts:
                parse_rows.append([label, n, f"{len(text) / 1000:.0f} KB",
                                   f"{parse_seconds(root, text):.3f} s", load()])
    print("\nbulk INSERT beside single-row INSERTs (another client, HTTP)")
    print_table(["checkout", "rows", "bulk over", "bulk wall",
                 "longest single-row INSERT meanwhile", "single-row INSERTs meanwhile", "load"],
                table)
    print("\nparse time of the bulk text (parser.parse_script, one child process each)")
    print_table(["checkout", "rows", "size", "parse", "load"], parse_rows)


if __name__ == "__main__":
    main()
