"""The SQL fast path (sqlgrammar/fastpath.py) against the normal path, at a
large count: every generated statement the fast path takes must parse to the
same tree, text and position as through sqlglot, and give the same results and
errors on execution (two servers, one with the fast path and one without).
Also prints the parse time of the two hot statements both ways.

    python bench/bench_fastpath.py [--parse 100000] [--execute 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fastpath_cases import check_execution, check_parse, close_pair, open_pair, statement  # noqa: E402
from sqlgrammar import fastpath, parser  # noqa: E402

HOT = {
    "INSERT": "INSERT INTO load.t VALUES (1000000001, 3, '0123456789abcdef0123456789abcdef')",
    "point SELECT": "SELECT id, client, v FROM load.t WHERE id = 1000000001",
}


def _timing(repeats: int = 3000) -> None:
    print("| statement | normal path, us CPU | fast path, us CPU |")
    print("|---|---:|---:|")
    for label, sql in HOT.items():
        out = []
        for fast in (False, True):
            parser.FAST_PATH = fast
            best = float("inf")
            for _ in range(3):
                t0 = time.process_time()
                for _ in range(repeats):
                    parser.parse_script(sql)
                best = min(best, time.process_time() - t0)
            out.append(best / repeats * 1e6)
        parser.FAST_PATH = True
        print(f"| {label} | {out[0]:.1f} | {out[1]:.1f} |")


async def _execute(count: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-fastpath-") as tmp:
        pair = await open_pair(Path(tmp))
        rng = random.Random(seed)
        try:
            for _ in range(count):
                await check_execution(pair, statement(rng), rng)
        finally:
            await close_pair(pair)
    print(f"execution: {pair.ran} statements on both servers, {pair.fast_taken} through the fast "
          f"path, outcomes {pair.outcomes}: all identical")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parse", type=int, default=100_000)
    ap.add_argument("--execute", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    _timing()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    taken = skeletons = used = 0
    for _ in range(args.parse):
        if len(fastpath._CHECKED) >= fastpath.MAX_SKELETONS:  # as a fresh server would
            skeletons += len(fastpath._CHECKED)
            used += sum(v is not False for v in fastpath._CHECKED.values())
            fastpath._CHECKED.clear()
        taken += check_parse(statement(rng))
    skeletons += len(fastpath._CHECKED)
    used += sum(v is not False for v in fastpath._CHECKED.values())
    fastpath._CHECKED.clear()
    print(f"parse: {args.parse} statements, {taken} through the fast path, all identical to "
          f"the normal path ({skeletons} skeletons checked against sqlglot, {used} taken; "
          f"{time.perf_counter() - t0:.1f} s)")
    asyncio.run(_execute(args.execute, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
