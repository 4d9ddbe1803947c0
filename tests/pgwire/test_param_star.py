"""A `$n` compared with a column of a `SELECT *` subquery or CTE takes the
type of the table column the `*` spreads there (a Cairn table's columns in
its view's order, `_updated` and `_deleted` too; over a join, each side's,
a repeated name as DuckDB names it: `k_1`): it was typed text, and asyncpg
refused the application's int ("expected str, got int")."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def test_a_star_subquerys_columns_type_parameters(pg: PgServer) -> None:
    status, body = pg.proc.post(
        "CREATE NAMESPACE st; CREATE TABLE st.s (k BIGINT PRIMARY KEY, v TEXT, n INT);"
        "CREATE TABLE st.u (id BIGINT PRIMARY KEY, v BIGINT);"
        "INSERT INTO st.s VALUES (1, '007', 1), (2, '7', 2); INSERT INTO st.u VALUES (1, 7)")
    assert status == 200, body

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            cases = {
                "SELECT k FROM (SELECT * FROM st.s) q WHERE q.k = $1": (["int8"], (1,), [1]),
                "WITH c AS (SELECT * FROM st.s) SELECT k FROM c WHERE k = $1":
                    (["int8"], (2,), [2]),
                "WITH c AS (SELECT * FROM st.s) SELECT k FROM c WHERE v = $1":
                    (["text"], ("007",), [1]),
                "SELECT k FROM (SELECT x.* FROM st.s x JOIN st.u y ON x.k = y.id) q "
                "WHERE n = $1": (["int4"], (1,), [1]),
                # a star over a join: both sides, u's v is v_1
                "SELECT k FROM (SELECT * FROM st.s JOIN st.u ON k = id) q WHERE v_1 = $1 "
                "AND v = $2 AND NOT _deleted_1 = $3": (["int8", "text", "bool"],
                                                       (7, "007", True), [1]),
                "SELECT k FROM (SELECT * FROM (SELECT * FROM st.s) a) b WHERE _deleted = $1 "
                "ORDER BY k": (["bool"], (False,), [1, 2]),
            }
            for sql, (kinds, args, keys) in cases.items():
                stmt = await conn.prepare(sql)
                assert [p.name for p in stmt.get_parameters()] == kinds, sql
                assert [r["k"] for r in await conn.fetch(sql, *args)] == keys, sql
        finally:
            await conn.close()

    asyncio.run(main())
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:  # '007' is TEXT, not 7
        q = "SELECT k FROM (SELECT * FROM st.s) q WHERE v = %s"
        assert conn.execute(q, ("7",)).fetchall() == [(2,)]
