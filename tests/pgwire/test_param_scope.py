"""A parameter whose type the client left open (psycopg's `str`, every
asyncpg parameter) takes the type of the column it is really compared with
or written into, bound as SQL binds names; where that is not one column, it
is text, as the same string literal over HTTP. A `$n` where a name must
stand is a syntax error, never the name."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import psycopg
import pytest

from server.pgwire import params
from server.pgwire import types as t
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _http(pg: PgServer, text: str) -> list[dict[str, Any]]:
    status, body = pg.proc.post(text)
    assert status == 200, body
    rows: list[dict[str, Any]] = body["results"][-1]["rows"]
    return rows


def test_two_tables_of_one_name_in_two_namespaces_are_told_apart(pg: PgServer) -> None:
    """`r1b.s` (BIGINT v) named after `r1a.s` (TEXT v) typed r1a.s's
    parameters BIGINT: '007' was stored '7', '0042' set as '42', and a
    DELETE of '7' also removed the row holding '007'."""
    _http(pg, "CREATE NAMESPACE sa; CREATE NAMESPACE sb;"
              "CREATE TABLE sa.s (k BIGINT PRIMARY KEY, v TEXT);"
              "CREATE TABLE sb.s (k BIGINT PRIMARY KEY, v BIGINT);"
              "INSERT INTO sb.s VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO sa.s VALUES (1, %s), (2, (SELECT max(v) FROM sb.s))", ("007",))
        conn.execute("INSERT INTO sa.s VALUES (3, 'x'), (4, '7'), (5, '007')")
        conn.execute("UPDATE sa.s SET v = %s WHERE k = 3 AND k IN (SELECT k FROM sb.s)",
                     ("0042",))
        conn.execute("SET search_path TO sa")  # unqualified, in the default namespace, too
        conn.execute("UPDATE s SET v = %s WHERE k = 2 AND k IN (SELECT k FROM sb.s)", ("0.0",))
        cur = conn.execute("DELETE FROM sa.s WHERE v = %s AND k IN (SELECT k FROM sb.s)", ("7",))
        assert cur.rowcount == 1
        assert conn.execute("SELECT k, v FROM sa.s ORDER BY k").fetchall() == [
            (1, "007"), (2, "0.0"), (3, "0042"), (5, "007")]
    assert _http(pg, "SELECT count(*) AS n FROM sb.s") == [{"n": 5}]


def test_a_parameter_in_a_subquery_takes_the_subquerys_column(pg: PgServer) -> None:
    """`code = $1` inside the subquery was typed from the outer table's
    BIGINT `code`: '007' matched '7' too, and the DELETE removed both rows."""
    _http(pg, "CREATE NAMESPACE sc;"
              "CREATE TABLE sc.orders (id BIGINT PRIMARY KEY, code BIGINT);"
              "CREATE TABLE sc.tags (id BIGINT PRIMARY KEY, code TEXT);"
              "INSERT INTO sc.orders VALUES (1, 7), (2, 8);"
              "INSERT INTO sc.tags VALUES (1, '7'), (2, '007')")
    q = "SELECT id FROM sc.orders WHERE id IN (SELECT id FROM sc.tags WHERE code = %s) ORDER BY id"
    assert _http(pg, q.replace("%s", "'007'")) == [{"id": 2}]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute(q, ("007",)).fetchall() == [(2,)]
        # the outer column named from inside the subquery is the outer one's
        assert conn.execute("SELECT id FROM sc.orders o WHERE id IN (SELECT id FROM sc.tags "
                            "WHERE o.code = %s)", ("007",)).fetchall() == [(1,)]
        cur = conn.execute("DELETE FROM sc.orders WHERE id IN "
                           "(SELECT id FROM sc.tags WHERE code = %s)", ("007",))
        assert cur.rowcount == 1
        assert conn.execute("SELECT id FROM sc.orders").fetchall() == [(1,)]


def test_asyncpg_is_told_the_type_of_the_column_really_compared(pg: PgServer) -> None:
    """asyncpg encodes each argument by the type Describe gives: the
    DELETE's '7' was refused ("expected an int") as r1b.s's BIGINT `v`."""
    _http(pg, "CREATE NAMESPACE sd; CREATE NAMESPACE se;"
              "CREATE TABLE sd.s (k BIGINT PRIMARY KEY, v TEXT);"
              "CREATE TABLE se.s (k BIGINT PRIMARY KEY, v BIGINT);"
              "INSERT INTO sd.s VALUES (1, '7'), (2, '007');"
              "INSERT INTO se.s VALUES (1, 7), (2, 7)")

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            kinds = {
                "SELECT k FROM sd.s WHERE v = $1 AND k IN (SELECT k FROM se.s WHERE v = $2)":
                    ["text", "int8"],
                "SELECT a.k FROM sd.s a JOIN se.s b ON a.k = b.k WHERE b.v = $1 AND a.v = $2":
                    ["int8", "text"],
                "SELECT k FROM (SELECT k, v FROM se.s) x WHERE v = $1": ["int8"],
                "WITH c AS (SELECT v AS w FROM sd.s) SELECT w FROM c WHERE w = $1": ["text"],
                # two columns of two types: no one column, text
                "SELECT k FROM sd.s a WHERE $1 IN (a.v, (SELECT max(v) FROM se.s), a.k)": ["text"],
            }
            for sql, want in kinds.items():
                stmt = await conn.prepare(sql)
                assert [p.name for p in stmt.get_parameters()] == want, sql
            assert await conn.execute(
                "DELETE FROM sd.s WHERE v = $1 AND k IN (SELECT k FROM se.s WHERE v = $2)",
                "7", 7) == "DELETE 1"
            assert [tuple(r) for r in await conn.fetch("SELECT k, v FROM sd.s")] == [(2, "007")]
        finally:
            await conn.close()

    asyncio.run(main())


def test_infer_binds_names_as_sql_scopes_do() -> None:
    tables = {("a", "s"): {"k": "BIGINT", "v": "TEXT"}, ("b", "s"): {"k": "BIGINT", "v": "BIGINT"},
              ("a", "r"): {"k": "BIGINT", "v": "REAL"}}
    lookup = lambda ns, name: tables.get((ns or "a", name))  # noqa: E731
    cases = {
        "INSERT INTO a.s VALUES (1, $1), (2, (SELECT max(v) FROM b.s))": [t.TEXT],
        "INSERT INTO b.s (v, k) SELECT 1, 2 FROM a.s WHERE v = $1": [t.TEXT],
        "SELECT * FROM a.s, b.s WHERE b.s.v = $1 AND a.s.v = $2 AND s.k = $3":
            [t.INT8, t.TEXT, t.TEXT],  # bare `s` names both: no one column, text
        "SELECT * FROM s x WHERE EXISTS (SELECT 1 FROM b.s WHERE x.v = $1 AND v = $2)":
            [t.TEXT, t.INT8],
        "WITH s AS (SELECT v FROM b.s) SELECT * FROM s WHERE v = $1": [t.INT8],
        "SELECT * FROM (SELECT v FROM a.r UNION SELECT v FROM b.s) u WHERE v = $1": [t.TEXT],
        "SELECT * FROM (SELECT * FROM b.s) u WHERE v = $1": [t.INT8],  # the * spread
        "SELECT * FROM (SELECT * FROM b.s, a.r) u WHERE v = $1 AND v_1 = $2":
            [t.INT8, t.FLOAT4],  # DuckDB's name for the second v
        "SELECT * FROM (SELECT * FROM nope) u WHERE v = $1": [t.TEXT],  # cannot tell: text
        "SELECT * FROM a.s, nope WHERE v = $1": [t.TEXT],
        "SELECT * FROM a.s JOIN a.r USING (k) WHERE k = $1 AND r.v = $2": [t.INT8, t.FLOAT4],
        "UPDATE a.r SET v = $1 WHERE k IN (SELECT k FROM b.s WHERE v = $2)": [t.FLOAT4, t.INT8],
        "SELECT date_trunc($1, now()) FROM a.s LIMIT $2": [t.TEXT, t.INT8],
    }
    for sql, want in cases.items():
        assert params.infer(sql, [], lookup, "a")[0] == want, sql
    assert params.infer("UPDATE a.r SET v = $1", [], lookup)[1] == [("v", "REAL")]


@pytest.mark.parametrize("sql, n, position", [
    ("SELECT * FROM sf.$1", 1, 18),
    ("SELECT k FROM sf.secret s WHERE s.$1 = 42", 1, 35),
    ("SELECT $1 AS $2", 2, 14),
    ("SELECT $1(2)", 1, 8),
    ("UPDATE sf.secret SET $1 = 1", 1, 22),
    ("INSERT INTO sf.secret ($1) VALUES (1)", 1, 24),
    ("SELECT k FROM sf.secret AS $1", 1, 28),
])
def test_a_parameter_where_a_name_stands_is_a_syntax_error(pg: PgServer, sql: str, n: int,
                                                           position: int) -> None:
    """`FROM r6.$1` with 'secret' read the table r6.secret: the value named
    the table. A `$n` is a value: PostgreSQL's 42601, at the `$n`."""
    _http(pg, "CREATE NAMESPACE IF NOT EXISTS sf; CREATE TABLE IF NOT EXISTS sf.secret (k INT)")
    args = tuple(["secret", "k"][:n] if n > 1 else ["secret"])
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for values in (args, tuple(range(len(args)))):  # open (str) and declared (int8) types
            with pytest.raises(psycopg.errors.SyntaxError) as info:
                conn.execute(sql.replace(f"${len(args)}", "%s").replace("$1", "%s"), values)
            assert info.value.diag.message_primary == f'syntax error at or near "${n}"'
            assert info.value.diag.statement_position == str(position)
        assert conn.execute("SELECT count(*) FROM sf.secret WHERE k = %s", (42,)).fetchone()

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            with pytest.raises(asyncpg.exceptions.PostgresSyntaxError, match=rf"\${n}"):
                await conn.fetch(sql, *args)
        finally:
            await conn.close()

    asyncio.run(main())
