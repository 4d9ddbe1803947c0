"""What drivers and psql ask of the catalog when they introspect, answered as
PostgreSQL answers it: psql's `\\du` / `\\dg` list the role (pg_auth_members,
which they join, was not modelled: the query was answered with no rows),
`\\dp` / `\\z` the tables (pg_policy likewise), `\\dT+` the types (its
`CAST(… AS pg_catalog.text)` was read as a type DuckDB did not have), and
a type OID 0 shown as a type is `-` (asyncpg's type introspection reads
`elemtype::regtype::text` of every type; `format_type(0, NULL)` said `???`
and `0::regtype::text` `0`)."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_psql import psql

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


@pytest.mark.parametrize("command", [r"\du", r"\dg", r"\du+"])
def test_psql_lists_the_role(pg: PgServer, command: str) -> None:
    out = psql(pg, "-c", command).stdout
    assert "List of roles" in out and "cairn" in out, out
    assert "(0 rows)" not in out


def test_psql_lists_privileges_and_types(pg: PgServer) -> None:
    psql(pg, "-c", "CREATE NAMESPACE IF NOT EXISTS introspect_ns",
         "-c", "CREATE TABLE IF NOT EXISTS introspect_ns.t (a INT)")
    for command in (r"\dp introspect_ns.*", r"\z introspect_ns.*"):
        out = psql(pg, "-c", command).stdout
        assert "Access privileges" in out and "introspect_ns" in out and "(1 row)" in out, out
    out = psql(pg, "-c", r"\dT+ pg_catalog.json").stdout
    assert "json" in out and "var" in out and "(1 row)" in out, out


def test_no_type_shows_as_a_dash(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT 0::regtype::text AS a, format_type(0, NULL) AS b, "
                           "23::regtype::text AS c").fetchone()
    assert row == ("-", "-", "integer")


def test_asyncpg_introspects_arrays_as_postgresql_does(pg: PgServer) -> None:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg.url())
        try:
            types, _ = await conn._introspect_types([1002, 199, 1187, 2210], 10)
            return list(types)
        finally:
            await conn.close()

    types = {r["oid"]: r for r in asyncio.run(run())}
    for array, element in ((1002, 18), (199, 114), (1187, 1186), (2210, 2205)):
        assert types[array]["elemtype"] == element
        assert types[array]["elemdelim"] in (",", b",")
        assert types[element]["elemtype"] == 0
        assert types[element]["elemtype_name"] == "-"
