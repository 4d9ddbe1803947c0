"""A statement with bound parameters reads its literals as DuckDB does
(sqlgrammar/literals.py): `T 'x'::U` is `(T 'x')::U`, where sqlglot ran
CAST(CAST('x' AS U) AS T), and `.5` is '.5' as text, not '0.5'. The model
is DuckDB itself over the same rows."""

from __future__ import annotations

import asyncio

import asyncpg
import duckdb

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

SETUP = ("CREATE TABLE pl.t (k INT PRIMARY KEY, ts TIMESTAMP, s TEXT); "
         "INSERT INTO pl.t VALUES (1, '2024-02-05 08:00:00', 'a'), "
         "(2, '2024-02-05 09:00:00', 'b'), (3, '2024-02-05 10:00:00', 'c')")
STATEMENTS = [
    ("UPDATE pl.t SET s = TIMESTAMP '2024-02-05 10:30:00'::DATE || $1 WHERE k = $2", ("!", 3)),
    ("DELETE FROM pl.t WHERE ts < TIMESTAMPTZ '2024-02-05 10:30:00+02'::TIMESTAMP AND k > $1",
     (0,)),
    ("UPDATE pl.t SET s = s || .5 || $1 WHERE k = $2", ("!", 2)),
]
TABLE = "SELECT k, CAST(ts AS VARCHAR) AS ts, s FROM pl.t ORDER BY k"


def test_a_cast_typed_literal_beside_parameters_changes_duckdbs_rows(pg: PgServer) -> None:
    status, body = pg.proc.post("CREATE NAMESPACE pl; " + SETUP)
    assert status == 200, body
    model = duckdb.connect()
    model.execute("LOAD icu; SET TimeZone = 'UTC'; CREATE SCHEMA pl; " + SETUP)

    async def main() -> list[list[str]]:
        conn = await asyncpg.connect(pg.url())
        try:
            for text, args in STATEMENTS:
                await conn.execute(text, *args)
            return [[str(v) for v in r.values()] for r in await conn.fetch(TABLE)]
        finally:
            await conn.close()

    got = asyncio.run(main())
    for text, args in STATEMENTS:
        model.execute(text, list(args))
    want = [[str(v) for v in r] for r in model.execute(TABLE).fetchall()]
    assert got == want == [["2", "2024-02-05 09:00:00", "b.5!"],
                           ["3", "2024-02-05 10:00:00", "2024-02-05!"]]
