"""What watching costs (issue 17): the time of one GET /metrics scrape as the
catalog grows (namespaces, tables, backups), its size in bytes, and what the
request-timing middleware adds to each request.

Against a real `cairn serve`: N namespaces with one table each (a few buffered
rows), one BACKUP per namespace, then 200 scrapes (p50/p99). The middleware's
cost is measured in-process: `Metrics.observe_request` (counter + histogram +
slow-request check) called 100,000 times, per call.

Aim: a scrape under 50 ms at 100 namespaces; under 10 µs per request for the
middleware's bookkeeping.

    python bench/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Server, load, machine, pct, print_table, run, session, sql

sys.path.insert(0, str(ROOT))

from server.metrics import Metrics, statement_kind  # noqa: E402


async def scrape_case(url: str, namespaces: int, scrapes: int) -> list[object]:
    async with session() as http:
        for i in range(namespaces):
            await sql(http, url, f"CREATE NAMESPACE IF NOT EXISTS m{i}; CREATE TABLE IF NOT EXISTS "
                                 f"m{i}.t (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO m{i}.t "
                                 f"VALUES ({namespaces}, 'x')")
            await sql(http, url, f"BACKUP DATABASE m{i} TO 'bench'")
        times = []
        size = 0
        for _ in range(scrapes):
            started = time.perf_counter()
            async with http.get(url + "/metrics") as resp:
                body = await resp.read()
            times.append((time.perf_counter() - started) * 1000)
            size = len(body)
    return [namespaces, scrapes, f"{pct(times, 50):.2f}", f"{pct(times, 99):.2f}",
            f"{size / 1024:.1f}"]


def observe_cost(calls: int) -> float:
    m = Metrics(slow_seconds=1.0)
    kinds = [statement_kind(s) for s in ("SELECT 1", "INSERT INTO a.t VALUES (1)",
                                         "BACKUP DATABASE a TO 'x'")]
    started = time.perf_counter()
    for i in range(calls):
        m.observe_request("http", kinds[i % 3], 0.0012, "ok", sql="SELECT 1")
    return (time.perf_counter() - started) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 and 30 namespaces, 50 scrapes")
    args = parser.parse_args()
    sizes = [10, 30] if args.quick else [10, 100, 300]
    scrapes = 50 if args.quick else 200
    print(f"{machine()} · {load()}")
    rows = []
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-metrics-"))
        server = Server(tmp / "data")
        try:
            rows.append(run(scrape_case(server.url, n, scrapes)))
        finally:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(["namespaces (1 table, 1 backup each)", "scrapes", "p50 ms", "p99 ms",
                 "body KiB"], rows)
    per_call = observe_cost(20_000 if args.quick else 100_000)
    print_table(["middleware bookkeeping", "µs per request", "aim"],
                [["Metrics.observe_request", f"{per_call:.2f}", "< 10"]])
    print(f"at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
