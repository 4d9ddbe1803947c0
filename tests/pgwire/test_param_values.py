"""Parameter values that must arrive as the client sent them, through real
psycopg and asyncpg connections: a float -0.0 keeps its sign, a REAL is
rounded once and refused where it would turn 0.0 or infinity, and a binary
'infinity' date or timestamp is refused as the text 'infinity' is."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import math

import asyncpg
import duckdb
import psycopg
import pytest

from server.pgwire import params
from server.pgwire import types as t
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _negative_zero(value: float) -> bool:
    return value == 0.0 and math.copysign(1.0, value) < 0


def test_a_negative_zero_float_literal_is_a_float() -> None:
    """`(-0.0)` is DuckDB's DECIMAL 0.0 negated: +0.0."""
    assert params.literal(-0.0, t.FLOAT8) == "CAST('-0.0' AS DOUBLE)"
    assert params.literal(-0.0, t.FLOAT4) == "CAST('-0.0' AS REAL)"
    assert params.literal(t.decode_param(t.FLOAT4, False, b"-0.0")) == "CAST('-0.0' AS REAL)"
    assert params.literal(-1.5, t.FLOAT8) == "(-1.5)"  # a DECIMAL, checked as a literal is
    assert params.literal(math.inf, t.FLOAT8) == "CAST('inf' AS DOUBLE)"


def test_parse_finds_the_column_a_parameter_is_written_into() -> None:
    tables = {"t": {"id": "BIGINT", "r": "REAL"}, "o": {"r": "DOUBLE"}}
    lookup = lambda ns, name: tables.get(name)  # noqa: E731
    assert params.infer("INSERT INTO t (r, id) VALUES ($1, $2), ($3, 4)", [], lookup) == (
        [t.FLOAT4, t.INT8, t.FLOAT4], [("r", "REAL"), ("id", "BIGINT"), ("r", "REAL")])
    assert params.infer("UPDATE t SET r = $1 FROM o WHERE t.id = $2 AND o.r = $3", [t.FLOAT8],
                        lookup)[1] == [("r", "REAL"), None, None]
    assert params.infer("SELECT $1::REAL", [], lookup) == ([t.FLOAT4], [None])


def test_a_negative_zero_parameter_keeps_its_sign_everywhere(pg: PgServer) -> None:
    """A -0.0 REAL parameter was stored +0.0 everywhere, a DOUBLE one in
    UPDATE … SET, INSERT … SELECT $1::DOUBLE and SELECT $1::DOUBLE."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE negz2; CREATE TABLE negz2.t (id BIGINT PRIMARY KEY, "
                     "r REAL, d DOUBLE)")
        conn.execute("INSERT INTO negz2.t (id, r, d) VALUES (%s, %s, %s)", (1, "-0.0", "-0.0"))
        conn.execute("INSERT INTO negz2.t (id, r, d) VALUES (2, 1, 1)")
        conn.execute("UPDATE negz2.t SET r = %s, d = %s WHERE id = 2", (-0.0, -0.0))

    async def run() -> float:
        c = await asyncpg.connect(pg.url())
        try:
            await c.execute("INSERT INTO negz2.t (id, r, d) VALUES ($1, $2, $3)", 3, -0.0, -0.0)
            await c.execute("INSERT INTO negz2.t (id, r, d) VALUES (4, 1, 1)")
            await c.execute("UPDATE negz2.t SET r = $1, d = $2 WHERE id = 4", -0.0, -0.0)
            await c.execute("INSERT INTO negz2.t (id, r, d) SELECT 5, $1::REAL, $2::DOUBLE",
                            -0.0, -0.0)
            value: float = await c.fetchval("SELECT $1::DOUBLE", -0.0)
            return value
        finally:
            await c.close()

    assert _negative_zero(asyncio.run(run()))
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        rows = conn.execute("SELECT id, r, d FROM negz2.t ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert all(_negative_zero(r[1]) and _negative_zero(r[2]) for r in rows), rows


def test_a_real_parameter_is_rounded_once(pg: PgServer) -> None:
    """'1.000000059604644775390624' (just below halfway between 1.0 and the
    next float32) went through a double, 1+2**-24 exactly, printed as
    1.0000000596046448 and rounded up: 1.0000001. The server's CAST gives 1.0."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE real1; CREATE TABLE real1.t (id BIGINT PRIMARY KEY, "
                     "r REAL)")
        below, above = "1.000000059604644775390624", "1.000000059604644775390626"
        conn.execute("INSERT INTO real1.t (id, r) VALUES (%s, %s), (%s, %s)", (1, below, 2, above))
        rows = conn.execute("SELECT id, r::VARCHAR FROM real1.t ORDER BY id").fetchall()
        assert rows == [(1, "1.0"), (2, "1.0000001")]
        cast = conn.execute(f"SELECT CAST('{below}' AS REAL)::VARCHAR").fetchone()
        assert conn.execute("SELECT %s::REAL::VARCHAR", (below,)).fetchone() == cast == ("1.0",)


def test_a_real_parameter_that_turns_zero_or_infinite_is_refused(pg: PgServer) -> None:
    """'1e-46' as a REAL parameter was stored 0.0 (and '1e39' infinity), where
    the same text as an HTTP literal is INVALID_ARGUMENT naming the column."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE real2; CREATE TABLE real2.t (id BIGINT PRIMARY KEY, "
                     "r REAL)")
        conn.execute("INSERT INTO real2.t (id, r) VALUES (1, 1)")
        for value in ("1e-46", "-1e-46", "1e39", "-3.5e38"):
            for sql, args in [("INSERT INTO real2.t (id, r) VALUES (%s, %s)", (2, value)),
                              ("UPDATE real2.t SET r = %s WHERE id = 1", (value,))]:
                with pytest.raises(psycopg.errors.InvalidParameterValue,
                                   match=r"Column 'r' \(REAL\).*out of range for REAL"):
                    conn.execute(sql, args)
            with pytest.raises(psycopg.errors.NumericValueOutOfRange, match=r"parameter \$1"):
                conn.execute("SELECT %s::REAL", (value,))
        for value in ("0", "-0", "1e-45", "3.4028235e38", "NaN", "-Infinity"):
            conn.execute("UPDATE real2.t SET r = %s WHERE id = 1", (value,))
        assert conn.execute("SELECT r FROM real2.t").fetchall() == [(-math.inf,)]


def test_a_numeric_literal_past_38_digits_is_the_decimal_of_its_digits() -> None:
    digits = "12345678901234567890123456789012345678"
    assert params.literal(decimal.Decimal("0." + digits)) == \
        f"CAST('0.{digits}' AS DECIMAL(38, 38))"
    assert params.literal(decimal.Decimal("-0." + digits)) == \
        f"CAST('-0.{digits}' AS DECIMAL(38, 38))"
    assert params.literal(decimal.Decimal("5." + "0" * 40)) == "CAST('5' AS DECIMAL(1, 0))"
    # no DECIMAL holds it: the DECIMAL(38, s) of its first 38 digits (it was a
    # string: `SELECT $1 * 2` gave 0; then a DOUBLE: 17 digits kept)
    assert params.literal(decimal.Decimal("1." + digits)) == \
        f"CAST('1.{digits[:37]}' AS DECIMAL(38, 37))"
    assert params.literal(decimal.Decimal("-1." + digits)) == \
        f"CAST('-1.{digits[:37]}' AS DECIMAL(38, 37))"
    tiny = "0." + "0" * 30 + "123456789012345"  # a DOUBLE keeps more of it than DECIMAL(38,38)
    assert params.literal(decimal.Decimal(tiny)) == tiny
    huge = "1" * 40 + ".5"  # no DECIMAL: its text, which a column's cast reads
    assert params.literal(decimal.Decimal(huge)) == f"'{huge}'"
    assert params.literal(decimal.Decimal("-1.50")) == "(-1.50)"  # a literal DuckDB reads exactly


def test_a_numeric_parameter_past_38_digits_arrives_exactly(pg: PgServer) -> None:
    """A NUMERIC parameter written out past 38 digits (a DECIMAL(38,38) value
    with its leading 0) was a bare literal, a DOUBLE to DuckDB: INSERT ...
    VALUES ($1) stored it exactly, UPDATE ... SET d = $1 and INSERT ... SELECT
    $1 0.12345678901234568000..., and refused 0.99...9 as 1.0."""
    v = decimal.Decimal("0.12345678901234567890123456789012345678")
    nines = decimal.Decimal("0." + "9" * 38)
    long = decimal.Decimal("1.00000000004999999999999999999999999999999")  # no DECIMAL holds it
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE num39; CREATE TABLE num39.t (id BIGINT PRIMARY KEY, "
                     "d DECIMAL(38,38), e DECIMAL(38,10))")
        for mark in ("%t", "%b"):  # text and binary parameters
            base = 10 if mark == "%b" else 0
            conn.execute(f"INSERT INTO num39.t (id, d, e) VALUES ({mark}, {mark}, {mark})",
                         (base + 1, v, long))
            conn.execute(f"INSERT INTO num39.t (id) VALUES ({base + 2}), ({base + 3})")
            conn.execute(f"UPDATE num39.t SET d = {mark}, e = {mark} WHERE id = {base + 2}",
                         (v, long))
            conn.execute(f"UPDATE num39.t SET d = {mark}, e = 0 WHERE id = {base + 3}", (nines,))
            conn.execute(f"INSERT INTO num39.t (id, d, e) SELECT {base + 4}, {mark}, {mark}",
                         (v, long))

    async def run() -> None:
        c = await asyncpg.connect(pg.url())
        try:
            await c.execute("INSERT INTO num39.t (id) VALUES (21)")
            await c.execute("UPDATE num39.t SET d = $1, e = $2 WHERE id = 21", v, long)
        finally:
            await c.close()

    asyncio.run(run())
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        got = conn.execute("SELECT id, d, e FROM num39.t ORDER BY id").fetchall()
    # e: rounded from the whole number, as PostgreSQL's numeric (not through a
    # DOUBLE, whose 1.00000000005 rounds up)
    exact = (v, decimal.Decimal("1.0000000000"))
    assert [(i, str(d), str(e)) for i, d, e in got] == [
        (i, *map(str, exact if i % 10 != 3 else (nines, decimal.Decimal("0E-10"))))
        for i in (1, 2, 3, 4, 11, 12, 13, 14, 21)]


def test_a_numeric_parameter_no_decimal_holds_is_a_number_not_text(pg: PgServer) -> None:
    """Past 38 significant digits a NUMERIC parameter was sent as a string:
    `SELECT $1 * 2` answered 0, `WHERE b < $1` compared as integers and found
    nothing, `$1 + 1` was 22023; then as a DOUBLE, which stored 17 of its
    digits in a DECIMAL(38,10). It is a number with its first 38 digits."""
    v = decimal.Decimal("1.4999999999999999999999999999999999999999")  # 41 digits
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE num41; CREATE TABLE num41.t (k BIGINT PRIMARY KEY, b INT);"
                     "INSERT INTO num41.t VALUES (1, 1)")
        for mark in ("%t", "%b"):
            [(twice, plus)] = conn.execute(f"SELECT {mark} * 2, {mark} + 1", (v, v)).fetchall()
            want = duckdb.sql(f"SELECT {v} * 2, {v} + 1").fetchall()[0]
            assert (float(twice), float(plus)) == (float(want[0]), float(want[1]))
            got = conn.execute(f"SELECT k FROM num41.t WHERE b < {mark}", (v,)).fetchall()
            assert got == [(1,)]
        conn.execute("CREATE TABLE num41.d (k BIGINT PRIMARY KEY, b DECIMAL(38,10), s TEXT)")
        big = decimal.Decimal("1234567890123456789012345678.12345678901")
        huge = decimal.Decimal("1" * 40 + ".5")
        conn.execute("INSERT INTO num41.d VALUES (1, 0, 'x')")
        conn.execute("UPDATE num41.d SET b = %s, s = %s WHERE k = 1", (big, huge))
        assert conn.execute("SELECT b, s FROM num41.d").fetchall() == [
            (decimal.Decimal("1234567890123456789012345678.1234567890"), str(huge))]


@pytest.fixture(scope="module")
def infinity_table(pg: PgServer) -> PgServer:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE inf; CREATE TABLE inf.t (id BIGINT PRIMARY KEY, dt DATE, "
                     "ts TIMESTAMP)")
        conn.execute("INSERT INTO inf.t (id) VALUES (1)")
    return pg


@pytest.mark.parametrize(("column", "value", "shown"), [
    ("dt", dt.date.max, "'infinity'"), ("dt", dt.date.min, "'-infinity'"),
    ("ts", dt.datetime.max, "'infinity'"),
    ("ts", dt.datetime.min.replace(tzinfo=dt.UTC), "'-infinity'"),
])
def test_a_binary_infinity_parameter_is_refused_naming_its_column(
        infinity_table: PgServer, column: str, value: dt.date, shown: str) -> None:
    """asyncpg sends date.max and datetime.max as PostgreSQL's infinity: it was
    22P02 "parameter of type oid 1082 is malformed"; the text 'infinity' is
    22023 naming the column, and now so is this. Outside a column it is
    DuckDB's infinity, as the text is (and PostgreSQL's)."""
    typ = "DATE" if column == "dt" else "TIMESTAMPTZ"

    async def run() -> None:
        c = await asyncpg.connect(infinity_table.url())
        try:
            for sql in (f"INSERT INTO inf.t (id, {column}) VALUES ($1, $2)",
                        f"UPDATE inf.t SET {column} = $2 WHERE id = $1"):
                with pytest.raises(asyncpg.InvalidParameterValueError) as caught:
                    await c.execute(sql, 2, value)
                assert f"Column '{column}'" in str(caught.value) and shown in str(caught.value)
            got = await c.fetchval(f"SELECT $1::{typ}", value)  # asyncpg: naive datetime.min
            assert got == (value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value)
            assert await c.fetchval(f"SELECT count(*) FROM inf.t WHERE {column} IS NULL "
                                    f"AND $1::{typ} IS NOT NULL", value) == 1
        finally:
            await c.close()

    asyncio.run(run())


def test_a_binary_date_past_python_is_22008_not_malformed() -> None:
    with pytest.raises(t.BadParameter) as caught:
        t.decode_param(t.DATE, True, (5_000_000).to_bytes(4, "big"))
    assert caught.value.code == "22008"
    assert t.decode_param(t.TIMESTAMPTZ, True, (2**63 - 1).to_bytes(8, "big")) == "infinity"
    assert params.literal("-infinity", t.TIMESTAMPTZ) == "CAST('-infinity' AS TIMESTAMP)"


def test_a_binary_bool_is_true_for_any_byte_but_zero() -> None:
    """PostgreSQL's boolrecv reads any byte but 0 as true; 0x02 and 0xff were
    stored as false."""
    assert [t.decode_param(t.BOOL, True, bytes([b])) for b in (0, 1, 2, 255)] == [
        False, True, True, True]


@pytest.mark.parametrize("oid", [t.TEXT, t.VARCHAR, t.BPCHAR, t.UNKNOWN, t.JSON])
def test_a_nul_in_a_binary_text_parameter_is_refused_as_in_text_format(oid: int) -> None:
    """The text format refused `a\\x00b` (22021, as PostgreSQL does); the
    binary format stored it."""
    with pytest.raises(t.BadUnicode, match="NUL"):
        t.decode_param(oid, False, b"a\x00b")
    with pytest.raises(t.BadUnicode, match="NUL"):
        t.decode_param(oid, True, b"a\x00b")
    assert t.decode_param(oid, True, b"ab") == "ab"


def test_a_string_beside_a_parameter_is_a_syntax_error(pg: PgServer) -> None:
    """A parameter is written into the text as a literal, so a string beside
    it (blanks between, a line break) joined its value: `SELECT $1` newline
    `'x'` answered 'ax', an INSERT stored 'value-suffix'; PostgreSQL and
    DuckDB read a syntax error."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS adj; "
                     "CREATE TABLE IF NOT EXISTS adj.t (k BIGINT PRIMARY KEY, v TEXT)")
        for text, args in (("SELECT %s\n'x'", ("a",)),
                           ("SELECT 'x'\n%s", ("a",)),
                           ("INSERT INTO adj.t (k, v) VALUES (%s, %s\n'-suffix')", (1, "value")),
                           ("SELECT %s'x'", ("a",))):
            with pytest.raises(psycopg.errors.SyntaxError, match="syntax error"):
                conn.execute(text, args)
        assert conn.execute("SELECT count(*) FROM adj.t").fetchone() == (0,)
        # a string elsewhere, or joined by ||, is as before
        assert conn.execute("SELECT %s || '-x', 'y'", ("a",)).fetchone() == ("a-x", "y")
