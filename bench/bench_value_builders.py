"""What a value built from a number costs DuckDB, and what Cairn now says to it.

Each statement runs in a child process on a bare DuckDB with Cairn's default
memory limit (1 GB), which prints its time and peak RSS: the limit covers the
buffer manager, not the strings and lists scalar functions build
(storage/value_bounds.py). Then the same statement through Cairn's sandbox,
which refuses it before DuckDB sees it. `--count` scales the builders
(default 30,000,000: seconds and a few GB; the docs' figures used 300,000,000).

    python bench/bench_value_builders.py [--count N] [--timeout S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlglot  # noqa: E402

from catalog.errors import CairnError  # noqa: E402
from storage import sandbox  # noqa: E402

CHILD = """
import duckdb, sys, time
con = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
t = time.perf_counter()
try:
    con.execute(sys.argv[1]).fetchall()
    print("ok", time.perf_counter() - t)
except duckdb.Error as e:
    print("error", time.perf_counter() - t, type(e).__name__)
"""


def statements(n: int) -> list[str]:
    return [
        f"SELECT len(range({n}))",
        f"SELECT len(list_resize([1], {n}))",
        f"SELECT length(repeat('x', {n * 10}))",
        f"SELECT length(lpad('x', {n * 10}, 'y'))",
        f"SELECT length(printf('%{n * 10}d', 1))",
    ]


def bare(text: str, timeout: float) -> tuple[str, float, float]:
    """(outcome, seconds, peak RSS in MB) of `text` on a bare DuckDB in a child."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, text], stdout=subprocess.PIPE,
                            text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    assert proc.stdout is not None
    out = proc.stdout.read().split()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    outcome = out[0] if out else ("killed at the timeout" if proc.returncode < 0 else "crashed")
    return outcome, time.perf_counter() - started, usage.ru_maxrss / 1024


def cairn(text: str) -> str:
    try:
        sandbox.check_query(sqlglot.parse_one(text, read="duckdb"))
    except CairnError as exc:
        return f"{exc.code} ({exc.message[:70]}...)"
    return "allowed"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=30_000_000)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    print("| statement | bare DuckDB (1 GB limit): outcome, s, peak RSS | Cairn |")
    print("|---|---|---|")
    for text in statements(args.count):
        outcome, seconds, peak = bare(text, args.timeout)
        print(f"| `{text}` | {outcome}, {seconds:.1f} s, {peak:,.0f} MB | {cairn(text)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
