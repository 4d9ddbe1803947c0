"""The SQL fast path on execution: two servers given the same seeded
statements, one with the fast path and one without, give the same results and
the same errors (code, message, statement, line, column), for every session
kind (no user, admin, role user) and USER tables (bench/bench_fastpath.py runs
a large count)."""

from __future__ import annotations

import random
from pathlib import Path

from bench.fastpath_cases import check_execution, close_pair, open_pair, statement


async def test_fast_and_normal_paths_answer_alike(tmp_path: Path) -> None:
    pair = await open_pair(tmp_path)
    rng = random.Random(15)
    try:
        for _ in range(250):
            await check_execution(pair, statement(rng), rng)
    finally:
        await close_pair(pair)
    assert pair.ran == 250
    assert pair.fast_taken > 60  # the fast path was really exercised
    assert pair.outcomes.get("ok", 0) > 40 and pair.outcomes.get("error", 0) > 40
