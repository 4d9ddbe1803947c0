"""A `$n` compared with an aggregate or function of a column, or with a
system table's column, takes that value's type, as PostgreSQL gives it: it
was typed text, so asyncpg could not prepare `HAVING sum(k) > $1` or
`WHERE coalesce(n, 0) = $1` (DuckDB refuses to compare a number with text).
`LIKE $1 ESCAPE $2` was 42601 "unexpected 'CAST'" at Describe, naming text
the client never wrote."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg

from server.pgwire import params
from server.pgwire import types as t
from tests.pgwire.conftest import PgServer


def test_asyncpg_prepares_comparisons_with_aggregates_and_functions(pg: PgServer) -> None:
    status, body = pg.proc.post(
        "CREATE NAMESPACE sx; CREATE TABLE sx.s (k BIGINT PRIMARY KEY, v TEXT, n INT);"
        "INSERT INTO sx.s VALUES (1, 'a%', 1), (2, 'ab', NULL)")
    assert status == 200, body

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            cases = {
                "SELECT k FROM sx.s GROUP BY k HAVING sum(k) > $1 ORDER BY k":
                    (["numeric"], (1,), [2]),
                "SELECT k FROM sx.s GROUP BY k HAVING count(*) = $1 AND sum(n) >= $2":
                    (["int8", "int8"], (1, 1), [1]),
                "SELECT k FROM sx.s WHERE coalesce(n, 0) = $1": (["int4"], (0,), [2]),
                "SELECT k FROM sx.s WHERE v LIKE $1 ESCAPE $2": (["text", "text"],
                                                                  ("a!%", "!"), [1]),
                "SELECT count(*) AS k FROM system.jobs WHERE rows > $1 AND job_type = $2":
                    (["int8", "text"], (-1, "nothing"), [0]),
            }
            for sql, (kinds, args, keys) in cases.items():
                stmt = await conn.prepare(sql)
                assert [p.name for p in stmt.get_parameters()] == kinds, sql
                assert [r["k"] for r in await conn.fetch(sql, *args)] == keys, sql
            assert await conn.fetchval("SELECT avg(k) FROM sx.s HAVING avg(k) > $1",
                                       Decimal("1.25")) == 1.5
        finally:
            await conn.close()

    asyncio.run(main())


def test_a_column_of_no_one_type_still_makes_text() -> None:
    tables = {("a", "s"): {"k": "BIGINT", "v": "TEXT", "d": "DOUBLE"}}
    lookup = lambda ns, name: tables.get((ns or "a", name))  # noqa: E731
    cases = {
        "SELECT k FROM a.s WHERE $1 IN (k, v)": [t.TEXT],
        "SELECT k FROM a.s WHERE $1 IN (k, k + 1)": [t.INT8],  # `k + 1`: passed over
        "SELECT k FROM a.s WHERE greatest(k, v) = $1": [t.TEXT],
        "SELECT k FROM a.s WHERE sum(d) = $1 AND avg(k) = $2 AND min(v) = $3":
            [t.FLOAT8, t.NUMERIC, t.TEXT],
    }
    for sql, want in cases.items():
        assert params.infer(sql, [], lookup, "a")[0] == want, sql
