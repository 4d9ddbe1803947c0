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

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


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


def test_a_statement_with_parameters_is_read_without_its_comments(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse read a statement with a `$n` through sqlglot comments and all
    (holding the GIL): `SELECT $1::INT` and 2,000,000 `--` comments took 24 s,
    other clients waiting 3.6 s. Each run of comments is one space now, as
    the SQL parser reads it; a misplaced `$n` is still named where it is."""
    from typing import Any

    from server.pgwire import params

    read: list[int] = []
    real = params.sqlglot

    class Reading:
        def parse_one(self, sql: str, **kw: Any) -> Any:
            read.append(len(sql))
            return real.parse_one(sql, **kw)

    monkeypatch.setattr(params, "sqlglot", Reading())
    text = "SELECT $1::INT AS n /* a /* b */ */ " + "--x\n" * 50_000 + "FROM pv.s WHERE k = $2"
    oids, _ = params.infer(text, [0, 0], lambda ns, table: {"k": "BIGINT", "v": "TEXT"}, "pv")
    assert oids == [23, 20]  # int4 as cast, int8 as the column
    params.refuse_misplaced(text)
    assert read and max(read) < 100, read
    for sql in ("SELECT /* c */ * FROM pv.s a -- d\n JOIN pv.s b /* e\n f */ USING ($1)",
                "WITH /* c */ $1 AS (SELECT 1) SELECT 1",
                "SELECT '1' /* é */ ::$1"):
        with pytest.raises(params.MisplacedParameter) as info:
            params.refuse_misplaced(sql)
        assert info.value.position == sql.index("$1") + 1, sql
