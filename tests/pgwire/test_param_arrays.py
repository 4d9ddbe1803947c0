"""Array parameters (server/pgwire/arrays.py): psycopg's lists of numbers
were taken as the text '{1,2}', so `k = ANY(%s)` was 'UNNEST() can only be
applied to lists'."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import struct

import asyncpg
import duckdb
import psycopg
import pytest

from server.pgwire import params
from server.pgwire import types as t
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

INT8_ARRAY, TEXT_ARRAY = 1016, 1009


def test_an_array_is_read_in_either_form_and_written_as_a_list() -> None:
    text = t.decode_param(TEXT_ARRAY, False, b'{a," b,c ","q\\"x",NULL,"NULL", d }')
    assert list(text) == ["a", " b,c ", 'q"x', None, "NULL", "d"]
    assert params.literal(text) == "['a', ' b,c ', 'q\"x', NULL, 'NULL', 'd']"
    assert params.literal(t.decode_param(INT8_ARRAY, False, b"{}")) == "CAST([] AS BIGINT[])"
    ints = [5, -1]
    raw = struct.pack("!iiIii", 1, 1, 20, len(ints) + 1, 1) + b"".join(
        struct.pack("!iq", 8, v) for v in ints) + struct.pack("!i", -1)
    assert params.literal(t.decode_param(INT8_ARRAY, True, raw)) == "[5, (-1), NULL]"


@pytest.mark.parametrize("raw", [b"1,2", b"{1,{2}}", b'{"a}', b"{1 2,3", b"{a}b}"])
def test_a_malformed_or_nested_array_is_refused(raw: bytes) -> None:
    with pytest.raises(t.BadParameter):
        t.decode_param(INT8_ARRAY, False, raw)
    with pytest.raises(t.BadParameter):
        t.decode_param(INT8_ARRAY, True, struct.pack("!iiI", 2, 0, 20) + b"\x00" * 16)


def test_psycopg_lists_of_numbers_are_lists(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS arr; "
                     "CREATE TABLE IF NOT EXISTS arr.t (k BIGINT PRIMARY KEY, f DOUBLE)")
        conn.execute("DELETE FROM arr.t")
        conn.execute("INSERT INTO arr.t VALUES (1, 0.5), (2, 1.5), (3, 2.5)")
        for binary in (False, True):
            got = conn.execute("SELECT k FROM arr.t WHERE k = ANY(%s) ORDER BY k", ([1, 3],),
                               binary=binary).fetchall()
            assert got == [(1,), (3,)]
            got = conn.execute("SELECT k FROM arr.t WHERE f = ANY(%s) ORDER BY k", ([1.5],),
                               binary=binary).fetchall()
            assert got == [(2,)]
        assert conn.execute("DELETE FROM arr.t WHERE k = ANY(%s)", ([2, 99],)).rowcount == 1
        assert conn.execute("DELETE FROM arr.t WHERE k = ANY(%s)", ([3],),
                            binary=True).rowcount == 1
        assert conn.execute("SELECT k FROM arr.t").fetchall() == [(1,)]


def test_psycopg_lists_of_strings_are_lists_where_an_array_is_compared(pg: PgServer) -> None:
    """psycopg sends a list of strings with no type (`{x,"a,b"}`): `v =
    ANY(%s)` and `v <> ALL(%s)` were 'UNNEST() can only be applied to lists'.
    A `$n` compared through ANY / ALL is an array of what it is compared
    with, as PostgreSQL types it; one cast to `T[]` is T's array."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS arrs; CREATE TABLE IF NOT EXISTS "
                     "arrs.t (k BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("DELETE FROM arrs.t")
        conn.execute("INSERT INTO arrs.t VALUES (1, 'x'), (2, 'a,b'), (3, 'q\"'), (4, NULL)")
        query = "SELECT k FROM arrs.t WHERE v = ANY(%s) ORDER BY k"
        assert conn.execute(query, (["x", "a,b", 'q"'],)).fetchall() == [(1,), (2,), (3,)]
        assert conn.execute(query, (["x", None],)).fetchall() == [(1,)]
        assert conn.execute(query, ([],)).fetchall() == []
        assert conn.execute("SELECT k FROM arrs.t WHERE v <> ALL(%s) ORDER BY k",
                            (["x", "a,b"],)).fetchall() == [(3,)]
        assert conn.execute("SELECT %s::TEXT[] AS a", (["a", "b,c", None],)).fetchone() == (
            ["a", "b,c", None],)
        assert conn.execute("DELETE FROM arrs.t WHERE v = ANY(%s)", (["a,b"],)).rowcount == 1
        assert conn.execute("SELECT k FROM arrs.t ORDER BY k").fetchall() == [(1,), (3,), (4,)]



def test_in_a_list_of_parameters_is_list_membership(pg: PgServer) -> None:
    """`i NOT IN [%s, %s]` with NULL and 1 is DuckDB's list membership (true
    for 2, as DuckDB answers over the same rows): sqlglot read the SQL list
    `IN (NULL, 1)` (NULL for 2), and the DELETE removed no row."""
    model = duckdb.connect()
    model.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, i BIGINT); "
                  "INSERT INTO t VALUES (1, 1), (2, 2), (3, NULL)")
    model.execute("DELETE FROM t WHERE i NOT IN [NULL, 1]")
    left = model.execute("SELECT k FROM t ORDER BY k").fetchall()
    assert left == [(1,), (3,)]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS inl; "
                     "CREATE TABLE IF NOT EXISTS inl.t (k BIGINT PRIMARY KEY, i BIGINT)")
        conn.execute("DELETE FROM inl.t")
        conn.execute("INSERT INTO inl.t VALUES (1, 1), (2, 2), (3, NULL)")
        for binary in (False, True):
            got = conn.execute("SELECT k FROM inl.t WHERE i NOT IN [%s, %s] ORDER BY k",
                               (None, 1), binary=binary).fetchall()
            assert got == [(2,)]
        assert conn.execute("DELETE FROM inl.t WHERE i NOT IN [%s, %s]", (None, 1)).rowcount == 1
        assert conn.execute("SELECT k FROM inl.t ORDER BY k").fetchall() == left

def test_asyncpg_arrays_are_lists(pg: PgServer) -> None:
    """asyncpg encodes a parameter by its described type, and looks an
    array's element type up in pg_type (`WHERE ti.oid = any($1::oid[])`):
    `$1::TEXT[]` and `v = ANY($1)` were described as text and the list
    refused ('expected str, got list'); `$1::BIGINT[]` failed in the look-up
    (sqlglot could not read `oid[]`, pg_type held no arrays, no pg_range)."""
    cases = [
        ("v = ANY($1::TEXT[])", ["x", "z", None], [1, 3]), ("v = ANY($1)", ["y"], [2]),
        ("k = ANY($1::BIGINT[])", [1, 3], [1, 3]), ("k = ANY($1)", [2], [2]),
        ("i = ANY($1::INT[])", [10, 30], [1, 3]), ("k <> ALL($1)", [2], [1, 3]),
        ("d = ANY($1)", [dt.date(2020, 1, 2)], [2]), ("b = ANY($1)", [True], [1, 3]),
        ("n = ANY($1)", [decimal.Decimal("2.50")], [2]), ("k = ANY($1)", [], []),
        # SOME is PostgreSQL's ANY; bytea[] (were refused: "UNNEST() … not VARCHAR")
        ("k = SOME($1)", [1, 3], [1, 3]), ("x = ANY($1)", [b"\x00\xffa"], [2]),
        ("x = ANY($1::bytea[])", [b"\x01", b"zz"], [1]),
    ]

    async def run() -> list[list[int]]:
        conn = await asyncpg.connect(pg.url())
        try:
            await conn.execute("CREATE NAMESPACE IF NOT EXISTS arra; CREATE TABLE IF NOT EXISTS "
                               "arra.t (k BIGINT PRIMARY KEY, v TEXT, i INT, d DATE, "
                               "b BOOLEAN, n DECIMAL(10,2), x BYTES)")
            await conn.execute("DELETE FROM arra.t")
            await conn.execute("INSERT INTO arra.t VALUES ($1, 'x', 10, '2020-01-01', true, 1.25,"
                               " $2), (2, 'y', 20, '2020-01-02', false, 2.50, $3),"
                               " (3, 'z', 30, '2020-01-03', true, 3.75, NULL)",
                               1, b"\x01", b"\x00\xffa")
            got = []
            for where, value, _ in cases:
                q = f"SELECT k FROM arra.t WHERE {where} ORDER BY k"
                got.append([r["k"] for r in await conn.fetch(q, value)])
            assert await conn.execute("DELETE FROM arra.t WHERE k = ANY($1)", [1, 2]) == "DELETE 2"
            got.append([r["k"] for r in await conn.fetch("SELECT k FROM arra.t")])
            return got
        finally:
            await conn.close()

    assert asyncio.run(run()) == [want for _, _, want in cases] + [[3]]


def test_a_json_key_parameter_is_text(pg: PgServer) -> None:
    """`j ->> %s`, `j -> %s` and json_extract_string(j, %s): the key took
    the JSON column's type ('Malformed JSON … Input: "x"'); it is text, as
    PostgreSQL and DuckDB type it. An explicit `$1::TIMESTAMP` is a
    timestamp (it was described as text: asyncpg refused a datetime)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS jk; CREATE TABLE IF NOT EXISTS "
                     "jk.t (k BIGINT PRIMARY KEY, j JSON, ts TIMESTAMP)")
        conn.execute("DELETE FROM jk.t")
        conn.execute("""INSERT INTO jk.t VALUES (1, '{"x": "one"}', '2020-01-01 00:00:00'),"""
                     """ (2, '{"x": "two"}', '2021-01-01 00:00:00')""")
        for query in ("SELECT k FROM jk.t WHERE j ->> %s = 'one'",
                      "SELECT k FROM jk.t WHERE json_extract_string(j, %s) = 'one'",
                      "SELECT k FROM jk.t WHERE (j -> %s)::TEXT = '\"one\"'"):
            assert conn.execute(query, ["x"]).fetchall() == [(1,)], query
        assert conn.execute("DELETE FROM jk.t WHERE j ->> %s = 'two'", ["x"]).rowcount == 1

    async def run() -> list[int]:
        conn = await asyncpg.connect(pg.url())
        try:
            got = await conn.fetch("SELECT k FROM jk.t WHERE ts < $1::TIMESTAMP",
                                   dt.datetime(2020, 6, 1))
            return [r["k"] for r in got]
        finally:
            await conn.close()

    assert asyncio.run(run()) == [1]


def test_bytes_written_into_the_text_in_postgresql_hex_are_refused(pg: PgServer) -> None:
    """psycopg's ClientCursor (and psycopg2) write bytes as `'\\x00ff6162'::bytea`,
    PostgreSQL's hex form, which DuckDB's BLOB cast reads as one byte and six
    characters: 7 bytes were stored where 4 were sent. Such a text of two or
    more bytes is refused; one byte means the same to both; parameters are exact."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS bx; CREATE TABLE IF NOT EXISTS "
                     "bx.t (k BIGINT PRIMARY KEY, b BYTES)")
        conn.execute("DELETE FROM bx.t")
        client = psycopg.ClientCursor(conn)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="ambiguous"):
            client.execute("INSERT INTO bx.t VALUES (%s, %s)", (1, b"\x00\xffab"))
        client.execute("INSERT INTO bx.t VALUES (%s, %s)", (2, b"A"))
        conn.execute("INSERT INTO bx.t VALUES (%s, %s)", (3, b"\x00\xffab"))
        got = conn.execute("SELECT k, b FROM bx.t ORDER BY k").fetchall()
        assert got == [(2, b"A"), (3, b"\x00\xffab")]


def test_a_parameter_cast_to_a_bare_numeric_keeps_its_digits(pg: PgServer) -> None:
    """DuckDB reads a bare NUMERIC as DECIMAL(18,3): `n = $1::numeric` of
    1.2345 compared 1.235 and matched the wrong row (so did `ANY($1::numeric[])`,
    which asyncpg users write); PostgreSQL's numeric is unconstrained."""

    async def run() -> list[object]:
        conn = await asyncpg.connect(pg.url())
        try:
            await conn.execute("CREATE NAMESPACE IF NOT EXISTS nc; CREATE TABLE IF NOT EXISTS "
                               "nc.t (k BIGINT PRIMARY KEY, n DECIMAL(10,4))")
            await conn.execute("DELETE FROM nc.t")
            await conn.execute("INSERT INTO nc.t VALUES (1, 1.2345), (2, 1.235)")
            one = decimal.Decimal("1.2345")
            return [
                [r["k"] for r in await conn.fetch("SELECT k FROM nc.t WHERE n = $1::numeric", one)],
                [r["k"] for r in await conn.fetch(
                    "SELECT k FROM nc.t WHERE n = ANY($1::numeric[])", [one])],
                await conn.fetchval("SELECT $1::numeric", decimal.Decimal("12345678901.123456789")),
                await conn.fetchval("SELECT $1::NUMERIC(10,2)", one),  # a typmod is the user's
                # a comment before the cast; 38 digits after the point; past 38 digits
                [r["k"] for r in await conn.fetch(
                    "SELECT k FROM nc.t WHERE n = $1 /* c */ ::numeric", one)],
                await conn.fetchval("SELECT $1::numeric", decimal.Decimal("1E-38")),
                [r["k"] for r in await conn.fetch(
                    "SELECT k FROM nc.t WHERE n = $1::numeric",
                    decimal.Decimal("1.23450000000000000000000000000000000000001"))],
                # a comment after the ::; past 38 whole digits a number, not text
                [r["k"] for r in await conn.fetch("SELECT k FROM nc.t WHERE n = $1::/* c */numeric",
                                                  one)],
                await conn.fetchval("SELECT $1::numeric * 2 > 0", decimal.Decimal(10) ** 40),
                await conn.fetchval("SELECT $1::numeric /* c */ (10,2)", one),
            ]
        finally:
            await conn.close()

    assert asyncio.run(run()) == [[1], [1], decimal.Decimal("12345678901.123456789"),
                                  decimal.Decimal("1.23"), [1], decimal.Decimal("1E-38"), [1],
                                  [1], True, decimal.Decimal("1.23")]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:  # a float parameter
        assert conn.execute("SELECT k FROM nc.t WHERE n = %s::numeric", [1.2345]).fetchall() == [
            (1,)]
        # a float by its shortest text, not its binary expansion (99999999999999991611392)
        assert conn.execute("SELECT %s::numeric", [1e23]).fetchone() == (decimal.Decimal("1E+23"),)
