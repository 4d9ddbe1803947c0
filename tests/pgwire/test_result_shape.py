"""A prepared statement whose result shape changed since it was described
(another client's ALTER TABLE) fails with 0A000 "cached plan must not change
result type", as PostgreSQL's does: its rows were sent in the shape Describe
promised (a DOUBLE 2.7 as int8 2, a TEXT 'hello' as XX000 "this is a bug"), or
in one the client was not told (asyncpg: "the number of columns in the result
row (5) is different from what was described (4)")."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

CHANGED = "cached plan must not change result type"


def ddl(pg: PgServer, *statements: str) -> None:
    """Another client's statements."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for text in statements:
            conn.execute(text)


def retype(column: str, typ: str, value: str) -> tuple[str, ...]:
    return (f"ALTER TABLE rs.t DROP COLUMN {column}", f"ALTER TABLE rs.t ADD COLUMN {column} {typ}",
            f"UPDATE rs.t SET {column} = {value}")


@pytest.fixture
def table(pg: PgServer) -> None:
    ddl(pg, "DROP NAMESPACE IF EXISTS rs CASCADE", "CREATE NAMESPACE rs",
        "CREATE TABLE rs.t (id BIGINT PRIMARY KEY, v BIGINT)", "INSERT INTO rs.t VALUES (1, 5)")


def test_asyncpg_prepared_statement_after_a_type_or_column_change(
        pg: PgServer, table: None) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            st = await conn.prepare("SELECT id, v FROM rs.t")
            assert [tuple(r) for r in await st.fetch()] == [(1, 5)]
            ddl(pg, *retype("v", "DOUBLE", "2.7"))
            with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError,
                               match=CHANGED) as caught:
                await st.fetch()  # was [(1, 2)]: 2.7 cut to the promised int8
            assert caught.value.sqlstate == "0A000"
            ddl(pg, *retype("v", "TEXT", "'hello'"))
            with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError, match=CHANGED):
                await st.fetch()  # was XX000 "internal error"
            star = await conn.prepare("SELECT * FROM rs.t")
            assert len((await star.fetch())[0]) == 4  # id, v, _updated, _deleted
            ddl(pg, "ALTER TABLE rs.t ADD COLUMN w INT DEFAULT 42")
            with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError, match=CHANGED):
                await star.fetch()  # was a ProtocolError: 5 columns, 4 described
            ddl(pg, "ALTER TABLE rs.t DROP COLUMN w", "ALTER TABLE rs.t DROP COLUMN v")
            with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError, match=CHANGED):
                await star.fetch()
            # the connection goes on; prepared again, the statement reads the new shape
            again = await (await conn.prepare("SELECT * FROM rs.t")).fetch()
            assert len(again[0]) == 3 and again[0]["id"] == 1
            assert await conn.fetch("SELECT id FROM rs.t") == [(1,)]
        finally:
            await conn.close()

    asyncio.run(main())


def test_psycopg_prepared_statement_after_a_type_change(pg: PgServer, table: None) -> None:
    """psycopg describes each portal (Describe 'P'), not the statement: it is
    told the new shape with the rows, and reads them whole."""
    with psycopg.connect(pg.dsn(), autocommit=True, prepare_threshold=0) as conn:
        query = "SELECT id, v FROM rs.t WHERE id = %s"
        assert conn.execute(query, (1,), prepare=True).fetchall() == [(1, 5)]
        ddl(pg, *retype("v", "DOUBLE", "2.7"))
        assert conn.execute(query, (1,), prepare=True).fetchall() == [(1, 2.7)]
        ddl(pg, *retype("v", "TEXT", "'hello'"))
        assert conn.execute(query, (1,), prepare=True).fetchall() == [(1, "hello")]


def test_asyncpg_prepared_statement_with_parameters_after_a_type_change(
        pg: PgServer, table: None) -> None:
    """A statement with `$n` parameters whose table column changed type: its
    rows were sent in the described shape (a DOUBLE 2.7 as int8 2, a TEXT as
    an error), since a `$n`'s own column keeps its declared type."""
    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            st = await conn.prepare("SELECT id, v, $1::BIGINT AS p FROM rs.t WHERE id = $2")
            assert [tuple(r) for r in await st.fetch(7, 1)] == [(1, 5, 7)]
            ddl(pg, *retype("v", "DOUBLE", "2.7"))
            with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError, match=CHANGED):
                await st.fetch(7, 1)
            ddl(pg, *retype("v", "TEXT", "'hello'"))
            with pytest.raises(asyncpg.exceptions.FeatureNotSupportedError, match=CHANGED):
                await st.fetch(7, 1)
            again = await conn.prepare("SELECT id, v, $1::BIGINT AS p FROM rs.t WHERE id = $2")
            assert [tuple(r) for r in await again.fetch(7, 1)] == [(1, "hello", 7)]
            # a $n's own column keeps the type it was described with
            plain = await conn.prepare("SELECT $1 AS a, $2::INT + 1 AS b")
            assert [tuple(r) for r in await plain.fetch("x", 2)] == [("x", 3)]
        finally:
            await conn.close()

    asyncio.run(main())
