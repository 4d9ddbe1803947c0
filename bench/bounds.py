"""Bounded answers: the server's peak memory for one SELECT of N rows, with the
default bounds ([server] max_result_rows = 100000, max_result_bytes = 64 MiB)
and with them off (0), each on a fresh `cairn serve`.

    python bench/bounds.py [--rows 6000000]

Prints a table: bounds, rows returned, truncated, seconds, the server's peak
RSS and its RSS before the query."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import RssSampler, Server, load, machine, print_table, run, session, sql


async def one(rows: int, bounded: bool, root: Path) -> list[object]:
    config = root / "cairn.toml"
    limits = "" if bounded else "max_result_rows = 0\nmax_result_bytes = 0\n"
    config.write_text(f"[server]\nquery_timeout_seconds = 600.0\n{limits}")
    server = Server(root / "data", config=config)
    try:
        async with session() as http:
            await sql(http, server.url, "SELECT 1")
            before = RssSampler.read_kb(server.pid) / 1024
            text = f"SELECT i, repeat('x', 100) AS s FROM range({rows}) r(i)"
            with RssSampler(server.pid) as rss:
                started = time.perf_counter()
                body = await sql(http, server.url, text)
                took = time.perf_counter() - started
            res = body["results"][0]
            return ["default" if bounded else "off (0)", res["row_count"],
                    bool(res.get("truncated")), f"{took:.1f}", f"{rss.peak_mb:.0f}",
                    f"{before:.0f}"]
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6_000_000)
    args = parser.parse_args()
    print(machine())
    print(load())
    table = []
    for bounded in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            table.append(await one(args.rows, bounded, Path(tmp)))
    print(f"\nSELECT i, repeat('x', 100) FROM range({args.rows})")
    print_table(["bounds", "rows returned", "truncated", "seconds", "peak RSS MB",
                 "RSS before MB"], table)


if __name__ == "__main__":
    run(main())
