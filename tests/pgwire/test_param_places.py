"""A `$n` is a value wherever the grammar takes one, though sqlglot reads
some of those places as a name (FETCH FIRST $1 ROWS, a PIVOT's IN list):
they were refused as 42601 "syntax error at or near $1". A `$n` where a
name must stand stays a syntax error."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PgServer


def _setup(pg: PgServer) -> None:
    status, body = pg.proc.post(
        "CREATE NAMESPACE IF NOT EXISTS pv; CREATE TABLE IF NOT EXISTS pv.s (k BIGINT PRIMARY KEY, "
        "v TEXT); DELETE FROM pv.s WHERE k > 0; INSERT INTO pv.s VALUES (1, '007'), (2, 'x')")
    assert status == 200, body


def test_fetch_first_and_pivot_values_take_parameters(pg: PgServer) -> None:
    """Hibernate pages with `OFFSET ? ROWS FETCH NEXT ? ROWS ONLY`."""
    _setup(pg)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for prepare in (False, True):
            q = "SELECT k FROM pv.s ORDER BY k FETCH FIRST %s ROWS ONLY"
            assert conn.execute(q, (1,), prepare=prepare).fetchall() == [(1,)]
            q = "SELECT k FROM pv.s ORDER BY k OFFSET %s ROWS FETCH NEXT %s ROWS ONLY"
            assert conn.execute(q, (1, 1), prepare=prepare).fetchall() == [(2,)]
            q = "SELECT * FROM (SELECT k, v FROM pv.s) PIVOT (count(k) FOR v IN (%s))"
            assert conn.execute(q, ("007",), prepare=prepare).fetchall() == [(1,)]
            q = "SELECT * REPLACE (%s AS v) FROM (SELECT k, v FROM pv.s) WHERE k = 1"
            assert conn.execute(q, ("y",), prepare=prepare).fetchall() == [(1, "y")]

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            rows = await conn.fetch("SELECT k FROM pv.s ORDER BY k OFFSET $1 ROWS "
                                    "FETCH FIRST $2 ROWS ONLY", 1, 1)
            assert [tuple(r) for r in rows] == [(2,)]
        finally:
            await conn.close()

    asyncio.run(main())


@pytest.mark.parametrize("sql, position", [
    ("SELECT * FROM pv.s a JOIN pv.s b USING ($1)", 41),
    ("WITH $1 AS (SELECT 1) SELECT 1", 6),
    ("SELECT * EXCLUDE ($1) FROM pv.s", 19),
    ("SELECT * FROM pv.s UNPIVOT (x FOR y IN ($1))", 41),
    ("SELECT * FROM pv.s PIVOT (sum(k) FOR $1 IN ('007'))", 38),
    ("SELECT k FROM pv.s WHERE v = 'X' COLLATE $1", 42),
    ("SELECT '1'::$1", 13),
])
def test_a_parameter_naming_a_column_or_item_is_a_syntax_error(pg: PgServer, sql: str,
                                                                position: int) -> None:
    _setup(pg)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as info:
            conn.execute(sql.replace("$1", "%s"), ("k",))
        assert info.value.diag.message_primary == 'syntax error at or near "$1"'
        assert info.value.diag.statement_position == str(position)
