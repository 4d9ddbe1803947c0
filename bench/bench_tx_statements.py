"""How long pgwire's reading of a transaction statement holds the event loop
(server/pgwire/transactions.py: every statement is asked whether it is one,
on the event loop, before anything else). 10 MB statements of the shapes a
client could send: a quoted savepoint name, a string (PREPARE TRANSACTION,
COMMIT PREPARED), one word past ASCII, a word after COMMIT, 10 M commas. Until
2026-12-08 a quoted name or string was read a character at a time: 1.2-1.4 s
for a 10 MB one, 0.8 s for 3.3 M doubled quotes (now ~0.19 s: one step each).
Aim: under 50 ms each but that one.

    python bench/bench_tx_statements.py [--mb 10]"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.pgwire import transactions  # noqa: E402 (after the path)
from server.pgwire.errors import PgError  # noqa: E402


def shapes(n: int) -> dict[str, str]:
    return {
        "SAVEPOINT \"<é…>\"": 'SAVEPOINT "' + "é" * n + '"',
        "SAVEPOINT \"<x…>\"": 'SAVEPOINT "' + "x" * n + '"',
        "PREPARE TRANSACTION '<x''…>'": "PREPARE TRANSACTION '" + "x''" * (n // 3) + "'",
        "COMMIT PREPARED '<x…>'": "COMMIT PREPARED '" + "x" * n + "'",
        "SAVEPOINT <É…>": "SAVEPOINT " + "É" * n,
        "SELECT<é…> (not one)": "SELECT" + "é" * n,
        "COMMIT <é…>": "COMMIT " + "é" * n,
        "COMMIT <,…>": "COMMIT" + "," * n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    n = int(parser.parse_args().mb * 1_000_000)
    for name, sql in shapes(n).items():
        start = time.perf_counter()
        try:
            said = transactions.answer(sql, b"T", [])
            what = "not one" if said is None else said.tag
        except PgError as exc:
            what = exc.code
        took = (time.perf_counter() - start) * 1000
        print(f"{name:34} {took:8.1f} ms  ({what}; aim < 50 ms)")


if __name__ == "__main__":
    main()
