"""A parameter of no declared type written into, or compared with, a DECIMAL
column, whose text has an exponent or underscores, is what the same text in
SQL over HTTP is: DuckDB's CAST to the column's type, or refused where that
CAST refuses it. It was read by Python's Decimal(): '_1' was taken as 1 and
'1e-9' stored in a DECIMAL(9,9), both INVALID_ARGUMENT over HTTP, and a WHERE
with '1e-9' missed the row it had stored (0.00 in a DECIMAL(10,2)). A
statement's such texts are cast in one query a column, as over HTTP."""

from __future__ import annotations

import decimal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from server.pgwire.server import PgServer as InProcess
from tests.helpers import ok, state
from tests.pgwire.conftest import PgServer
from tests.private_duck import counted_queries

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

TABLE = "CREATE TABLE {}.t (id INT PRIMARY KEY, b DECIMAL(9,9), c DECIMAL(10,2))"


@pytest.fixture(scope="module")
def dp(pg: PgServer) -> PgServer:
    status, body = pg.proc.post("CREATE NAMESPACE dp; " + TABLE.format("dp"))
    assert status == 200, body
    return pg


@pytest.fixture
def conn(dp: PgServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dp.dsn(), autocommit=True) as c:
        c.execute("DELETE FROM dp.t")
        yield c


def _http(pg: PgServer, sql: str) -> dict[str, Any]:
    return pg.proc.post(sql)[1]


def _pg_error(conn: psycopg.Connection[Any], sql: str, *args: Any) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql, args)
    return caught.value


@pytest.mark.parametrize(("column", "text"), [("c", "_1"), ("c", "1__0"), ("b", "1e-9"),
                                              ("c", "1e")])
def test_text_http_refuses_is_refused_with_its_code(
        dp: PgServer, conn: psycopg.Connection[Any], column: str, text: str) -> None:
    http = _http(dp, f"INSERT INTO dp.t (id, {column}) VALUES (1, '{text}')")
    assert http["error"]["code"] == "INVALID_ARGUMENT", http
    conn.execute("INSERT INTO dp.t (id) VALUES (1)")
    for sql in (f"INSERT INTO dp.t (id, {column}) VALUES (2, %s)",
                f"UPDATE dp.t SET {column} = %s WHERE id = 1"):
        exc = _pg_error(conn, sql, text)
        assert exc.sqlstate == "22023", (sql, exc)  # INVALID_ARGUMENT, as over HTTP
        assert exc.diag.message_primary == http["error"]["message"], (sql, exc)
    http = _http(dp, f"SELECT id FROM dp.t WHERE {column} = '{text}'")
    assert http["error"]["code"] == "INVALID_ARGUMENT", http
    assert _pg_error(conn, f"SELECT id FROM dp.t WHERE {column} = %s", text).sqlstate == "22023"
    assert conn.execute("SELECT id, b, c FROM dp.t").fetchall() == [(1, None, None)]


@pytest.mark.parametrize(("column", "text"), [("c", "1e-9"), ("c", "1_000"), ("b", "0.1e-8"),
                                              ("c", " 1.005E0 "), ("c", "1_0.5")])
def test_text_http_reads_is_stored_as_duckdb_casts_it_and_found(
        dp: PgServer, conn: psycopg.Connection[Any], column: str, text: str) -> None:
    kind = "DECIMAL(9,9)" if column == "b" else "DECIMAL(10,2)"
    (cast,) = _http(dp, f"SELECT CAST('{text}' AS {kind})::VARCHAR AS v")["results"][0]["rows"]
    conn.execute(f"INSERT INTO dp.t (id, {column}) VALUES (%s, %s)", (1, text))
    assert conn.execute(f"SELECT {column}::VARCHAR FROM dp.t").fetchall() == [(cast["v"],)]
    assert conn.execute(f"SELECT id FROM dp.t WHERE {column} = %s", (text,)).fetchall() == [(1,)]
    assert conn.execute(f"SELECT id FROM dp.t WHERE {column} IN (%s, %s)",
                        (text, "7")).fetchall() == [(1,)]
    conn.execute(f"UPDATE dp.t SET {column} = %s WHERE {column} = %s", (text, text))
    assert conn.execute(f"DELETE FROM dp.t WHERE {column} = %s", (text,)).rowcount == 1


def test_a_number_the_client_typed_keeps_its_reading(conn: psycopg.Connection[Any]) -> None:
    """A Decimal (sent as NUMERIC: '1E-9') is the number it is; a cast of a
    parameter to a bare NUMERIC or arithmetic is not a column's reading."""
    conn.execute("INSERT INTO dp.t (id, b) VALUES (%s, %s)", (1, decimal.Decimal("1E-9")))
    assert conn.execute("SELECT b::VARCHAR FROM dp.t").fetchall() == [(".000000001",)]
    assert conn.execute("SELECT %s::numeric", ("1e-9",)).fetchone() == (
        decimal.Decimal("0.000000001"),)
    assert conn.execute("SELECT id FROM dp.t WHERE b = %s", (decimal.Decimal("1E-9"),)
                        ).fetchall() == [(1,)]


@pytest.fixture
async def inproc(client: Any) -> AsyncIterator[int]:
    await ok(client, "CREATE NAMESPACE dp; " + TABLE.format("dp"))
    server = InProcess(state(client))
    await server.start()
    try:
        yield server.port
    finally:
        await server.close()


async def test_a_statements_texts_are_cast_in_one_query_a_column(
        inproc: int, monkeypatch: pytest.MonkeyPatch) -> None:
    queries = counted_queries(monkeypatch)
    dsn = f"host=127.0.0.1 port={inproc} user=alice dbname=cairn"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        rows = list(range(1, 501))
        await conn.execute("INSERT INTO dp.t (id, c, b) VALUES " + ", ".join(
            ["(%s, %s, %s)"] * len(rows)), [v for i in rows for v in (i, f"{i}e-2", "0.1e-8")])
        await conn.execute("UPDATE dp.t SET c = %s WHERE id = %s", ("1_5", 7))
        assert len(queries) <= 3, len(queries)
        cur = await conn.execute("SELECT id, c::VARCHAR, b::VARCHAR FROM dp.t "
                                 "WHERE id IN (1, 7, 500) ORDER BY id")
        assert await cur.fetchall() == [(1, "0.01", ".000000001"), (7, "15.00", ".000000001"),
                                        (500, "5.00", ".000000001")]
        with pytest.raises(psycopg.Error) as caught:  # one the cast refuses refuses them all
            await conn.execute("INSERT INTO dp.t (id, b) VALUES (%s, %s), (%s, %s)",
                               (600, "0.1e-8", 601, "1e-9"))
        assert caught.value.sqlstate == "22023"
        cur = await conn.execute("SELECT count(*) FROM dp.t WHERE id >= 600")
        assert await cur.fetchall() == [(0,)]


@pytest.mark.parametrize(("column", "text"), [("b", "1e-9"), ("b", "_1e-9"), ("c", "007"),
                                              ("c", "1_000"), ("c", "1e-9")])
def test_a_parameter_also_written_into_a_text_column_is_the_http_literal(
        dp: PgServer, conn: psycopg.Connection[Any], column: str, text: str) -> None:
    """The same parameter into a DECIMAL and a TEXT column: each column gets
    what the HTTP literal gives it. It was read by Python's Decimal(): '1e-9'
    was stored in a DECIMAL(9,9), and the TEXT column got '7' for '007'."""
    status, body = dp.proc.post("CREATE TABLE IF NOT EXISTS dp.m "
                                "(id INT PRIMARY KEY, b DECIMAL(9,9), c DECIMAL(10,2), s TEXT); "
                                "DELETE FROM dp.m")
    assert status == 200, body
    http = _http(dp, f"INSERT INTO dp.m (id, {column}, s) VALUES (1, '{text}', '{text}')")
    if "error" in http:
        assert http["error"]["code"] == "INVALID_ARGUMENT", http
        for sql in (f"INSERT INTO dp.m (id, {column}, s) VALUES (%(i)s, %(a)s, %(a)s)",
                    f"INSERT INTO dp.m (id, s, {column}) VALUES (%(i)s, %(a)s, %(a)s)"):
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(sql, {"i": 2, "a": text})
            assert caught.value.sqlstate == "22023", (sql, caught.value)
            assert caught.value.diag.message_primary == http["error"]["message"]
        assert conn.execute("SELECT count(*) FROM dp.m").fetchall() == [(0,)]
        return
    (want,) = _http(dp, f"SELECT {column}::VARCHAR AS d, s FROM dp.m")["results"][0]["rows"]
    conn.execute(f"INSERT INTO dp.m (id, {column}, s) VALUES (%(i)s, %(a)s, %(a)s)",
                 {"i": 2, "a": text})
    conn.execute(f"UPDATE dp.m SET s = %(a)s, {column} = %(a)s WHERE id = 1", {"a": text})
    assert conn.execute(f"SELECT id, {column}::VARCHAR, s FROM dp.m ORDER BY id").fetchall() == [
        (1, want["d"], want["s"]), (2, want["d"], want["s"])]


@pytest.mark.parametrize("where", ["b IN (%s, %s)", "b BETWEEN %s AND %s"])
def test_several_parameters_of_a_list_are_each_the_http_literal(
        dp: PgServer, conn: psycopg.Connection[Any], where: str) -> None:
    """`b IN (%s, %s)` with '1e-9' and '0.5' (a DECIMAL(9,9)) is refused as
    HTTP's `b IN ('1e-9', '0.5')` is, and `b = %s` with '1e-9': the plain
    '0.5' was read as a number, and a text beside a number met its type
    (DOUBLE): the .000000001 row matched."""
    conn.execute("INSERT INTO dp.t (id, b) VALUES (1, 0.000000001), (2, 0.5)")
    http = _http(dp, "SELECT id FROM dp.t WHERE " + where.replace("%s", "'{}'").format(
        "1e-9", "0.5"))
    assert http["error"]["code"] == "INVALID_ARGUMENT", http
    assert _pg_error(conn, f"SELECT id FROM dp.t WHERE {where}", "1e-9", "0.5"
                     ).sqlstate == "22023"
    (rows,) = [r["rows"] for r in _http(dp, "SELECT id FROM dp.t WHERE " + where.replace(
        "%s", "'{}'").format("0.1e-8", "0.5") + " ORDER BY id")["results"]]
    assert [r["id"] for r in rows] == [1, 2]
    assert conn.execute(f"SELECT id FROM dp.t WHERE {where} ORDER BY id", ("0.1e-8", "0.5")
                        ).fetchall() == [(1,), (2,)]


def test_a_list_compared_by_any_is_its_texts_cast_as_an_in_list_of_them(
        dp: PgServer, conn: psycopg.Connection[Any]) -> None:
    """`c = ANY(%s)` with a list of str is what `c IN (…)` of the same texts
    is over HTTP: DuckDB casts each to the column's type. (The HTTP literal
    `c = ANY(['1e-9'])` is a Binder Error, a list of VARCHAR; the list is the
    parameter's, read as the column's type, as PostgreSQL reads it.) Python's
    Decimal() read the texts: ['1e-9'] missed the 0.00 row the same text
    had stored, and ['_1'] answered no rows."""
    conn.execute("INSERT INTO dp.t (id, c) VALUES (1, %s), (2, %s)", ("1e-9", "5"))
    for texts in (["1e-9"], ["1e-9", "5"], ["_1"], ["0.004", None], ["5"]):
        http = _http(dp, "SELECT id FROM dp.t WHERE c IN ({}) ORDER BY id".format(
            ", ".join("NULL" if v is None else f"'{v}'" for v in texts)))
        if "error" in http:
            assert http["error"]["code"] == "INVALID_ARGUMENT", http
            assert _pg_error(conn, "SELECT id FROM dp.t WHERE c = ANY(%s)", texts
                             ).sqlstate == "22023", texts
            continue
        want = [(r["id"],) for r in http["results"][0]["rows"]]
        assert want, texts
        assert conn.execute("SELECT id FROM dp.t WHERE c = ANY(%s) ORDER BY id", (texts,)
                            ).fetchall() == want, texts
    assert conn.execute("SELECT id FROM dp.t WHERE c <> ALL(%s) ORDER BY id", (["1e-9"],)
                        ).fetchall() == [(2,)]
    assert conn.execute("SELECT id FROM dp.t WHERE c = ANY(%s)", ([],)).fetchall() == []


@pytest.mark.parametrize("text", ["1.2.3", "١٢", "１２", "sNaN", "NaN", "-Infinity", "abc", "",
                                  "1 2", "0x10"])
def test_a_text_that_is_no_number_is_refused_as_http_refuses_it(
        dp: PgServer, conn: psycopg.Connection[Any], text: str) -> None:
    """A text Python's Decimal() does not read as DuckDB's CAST does, into or
    against a DECIMAL column, is refused with HTTP's code and message: '1.2.3',
    Arabic-Indic or full-width digits were 22P02 "invalid number parameter"
    (HTTP: INVALID_ARGUMENT, 22023), 'sNaN' named DOUBLE, 'NaN' named as nan,
    and `c = 'NaN'` answered no rows where HTTP refuses."""
    conn.execute("INSERT INTO dp.t (id, c) VALUES (1, 5)")
    literal = "'" + text + "'"
    for http_sql, pg_sql in (
            (f"INSERT INTO dp.t (id, c) VALUES (2, {literal})",
             "INSERT INTO dp.t (id, c) VALUES (2, %s)"),
            (f"UPDATE dp.t SET c = {literal} WHERE id = 1", "UPDATE dp.t SET c = %s WHERE id = 1"),
            (f"SELECT id FROM dp.t WHERE c = {literal}", "SELECT id FROM dp.t WHERE c = %s"),
            (f"SELECT id FROM dp.t WHERE {literal} < c", "SELECT id FROM dp.t WHERE %s < c"),
            (f"SELECT id FROM dp.t WHERE c IN ({literal})", "SELECT id FROM dp.t WHERE c IN (%s)"),
            (f"DELETE FROM dp.t WHERE c <> {literal}", "DELETE FROM dp.t WHERE c <> %s")):
        http = _http(dp, http_sql)
        assert http["error"]["code"] == "INVALID_ARGUMENT", (http_sql, http)
        exc = _pg_error(conn, pg_sql, text)
        assert exc.sqlstate == "22023", (pg_sql, exc)  # INVALID_ARGUMENT, as over HTTP
        assert exc.diag.message_primary == http["error"]["message"], (pg_sql, exc)
    assert conn.execute("SELECT id, c::VARCHAR FROM dp.t").fetchall() == [(1, "5.00")]


def _http_ids(pg: PgServer, sql: str) -> list[tuple[int]] | tuple[str, str]:
    """The rows' ids HTTP answers, or its refusal (code, message)."""
    body = _http(pg, sql)
    if "error" in body:
        return body["error"]["code"], body["error"]["message"]
    return [(r["id"],) for r in body["results"][0]["rows"]]


def _pg_ids(conn: psycopg.Connection[Any], sql: str, *args: Any
            ) -> list[tuple[int]] | tuple[str, str]:
    """The rows' ids pgwire answers, or its refusal as HTTP's (22023: INVALID_ARGUMENT)."""
    try:
        return conn.execute(sql, args).fetchall()
    except psycopg.Error as exc:
        code = "INVALID_ARGUMENT" if exc.sqlstate == "22023" else str(exc.sqlstate)
        return code, str(exc.diag.message_primary)


@pytest.mark.parametrize("where", ["%s IN (c, b)", "%s NOT IN (c, b)", "c IN (%s, b)",
                                   "c NOT IN (%s, b)", "%s BETWEEN b AND c",
                                   "coalesce(c, b) = %s"])
def test_a_parameter_against_decimals_of_two_precisions_is_numeric_and_the_http_literal(
        dp: PgServer, conn: psycopg.Connection[Any], where: str) -> None:
    """`$1 IN (c, b)` (a DECIMAL(10,2) and a DECIMAL(9,9)) was typed TEXT, not
    NUMERIC, since a DECIMAL column's type carries its precision (a client
    going by ParameterDescription sent it as text, or refused a number)."""
    conn.execute("INSERT INTO dp.t (id, b, c) VALUES (1, 0.5, 1.5), (2, 0.000000001, 0), "
                 "(3, NULL, 5), (4, 0.1, NULL)")
    conn.pgconn.prepare(b"two", ("SELECT id FROM dp.t WHERE " + where.replace("%s", "$1")).encode())
    assert conn.pgconn.describe_prepared(b"two").param_type(0) == 1700, where  # numeric
    for text in ("1.5", "1e-9", "_1", "0.5", "1.2.3", None):
        literal = "NULL" if text is None else f"'{text}'"
        sql = f"SELECT id FROM dp.t WHERE {where} ORDER BY id"
        assert _pg_ids(conn, sql, text) == _http_ids(dp, sql.replace("%s", literal)), (where, text)


def test_a_list_against_decimals_of_two_precisions_is_cast_as_an_in_list(
        dp: PgServer, conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO dp.t (id, b, c) VALUES (1, 0.5, 1.5), (2, 0.000000001, NULL)")
    for texts in (["1e-9"], ["1.5", None], ["_1"], [None], ["0.1e-8", "7"]):
        literals = ", ".join("NULL" if v is None else f"'{v}'" for v in texts)
        assert _pg_ids(conn, "SELECT id FROM dp.t WHERE coalesce(c, b) = ANY(%s) ORDER BY id",
                       texts) == _http_ids(
            dp, f"SELECT id FROM dp.t WHERE coalesce(c, b) IN ({literals}) ORDER BY id"), texts
    assert _pg_ids(conn, "SELECT id FROM dp.t WHERE coalesce(c, b) = ANY(%s)", []) == []


@pytest.mark.parametrize("text", ["1.005", "1.5", "12345678901234", "+1.01", "1.", "-0"])
def test_plain_digits_compared_with_a_decimal_are_the_http_literal(
        dp: PgServer, conn: psycopg.Connection[Any], text: str) -> None:
    """A plain-digit text compared with a DECIMAL column is DuckDB's cast of it
    to the column's type, as the HTTP literal: compared as a number, `c = %s`
    with '1.005' missed the 1.01 HTTP's `c = '1.005'` finds in a DECIMAL(10,2),
    and '1.5' against a DECIMAL(9,9) answered no rows where HTTP refuses."""
    conn.execute("INSERT INTO dp.t (id, b, c) VALUES (1, 0.5, 1.01), (2, 0.000000001, 0)")
    for where in ("c = %(a)s", "c > %(a)s", "%(a)s <= c", "b = %(a)s", "b <> %(a)s",
                  "c IS DISTINCT FROM %(a)s", "%(a)s = c OR %(a)s = b",
                  "c IN (SELECT c FROM dp.t WHERE c = %(a)s)"):
        sql = f"SELECT id FROM dp.t WHERE {where} ORDER BY id"
        want = _http_ids(dp, sql.replace("%(a)s", f"'{text}'"))
        try:
            got: Any = conn.execute(sql, {"a": text}).fetchall()
        except psycopg.Error as exc:
            assert exc.sqlstate == "22023", (where, exc)
            got = "INVALID_ARGUMENT", exc.diag.message_primary
        assert got == want, (where, text)
    want = _http_ids(dp, f"SELECT id FROM dp.t WHERE c = '{text}'")
    try:
        got = conn.execute("UPDATE dp.t SET b = NULL WHERE c = %s", (text,)).rowcount
    except psycopg.Error as exc:
        assert exc.sqlstate == "22023", exc
        got = "INVALID_ARGUMENT", exc.diag.message_primary
    assert got == (len(want) if isinstance(want, list) else want), text
