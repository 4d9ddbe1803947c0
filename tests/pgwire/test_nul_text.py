"""A text value holding U+0000 (taken over HTTP, or made by `chr(0)`) cannot
go over the PostgreSQL protocol: no PostgreSQL text holds one, and libpq
clients read a text field as a C string, so psql showed the 3-character
'a\\0b' as `a`. It is 22P05 (as PostgreSQL's "\\u0000 cannot be converted to
text"), in text and binary format, before any row of the answer is sent; the
connection goes on. What writes a NUL some other way is sent: JSON text
(`\\u0000`), bytea."""

from __future__ import annotations

import json

import psycopg
import pyarrow as pa
import pytest

from server.pgwire import nultext
from server.pgwire import types as t
from server.pgwire.relations import default_text
from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _connect, _fields, _msg, _read_all
from tests.pgwire.test_psql import psql


@pytest.fixture(scope="module")
def nul_table(pg: PgServer) -> str:
    """nulns.t: row 1 plain text, row 2 'a\\0b' (written over HTTP, which
    docs/http.md says stores and returns it as sent)."""
    for sql in ("CREATE NAMESPACE nulns",
                "CREATE TABLE nulns.t (k INT PRIMARY KEY, v TEXT)",
                "INSERT INTO nulns.t VALUES (1, 'plain'), (2, 'a\x00b')"):
        status, body = pg.proc.post(sql)
        assert status == 200, body
    status, body = pg.proc.post("SELECT v FROM nulns.t WHERE k = 2")
    assert body["results"][0]["rows"] == [{"v": "a\x00b"}]  # HTTP returns it
    return "nulns.t"


@pytest.mark.parametrize("binary", [False, True])
def test_a_text_holding_nul_is_22P05_and_the_connection_goes_on(
        pg: PgServer, nul_table: str, binary: bool) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for sql in (f"SELECT k, v FROM {nul_table} ORDER BY k",
                    "SELECT 'a' || chr(0) || 'b' AS made"):
            with pytest.raises(psycopg.errors.UntranslatableCharacter) as caught:
                conn.cursor(binary=binary).execute(sql)
            assert caught.value.sqlstate == "22P05"
            name = "v" if "k, v" in sql else "made"
            assert f'column "{name}" holds a NUL character' in str(caught.value)
        # the same connection goes on; the value can be had without the NUL, or as bytea
        cur = conn.cursor(binary=binary)
        got = cur.execute(f"SELECT replace(v, chr(0), '') AS r, encode(v) AS b FROM {nul_table}"
                          " WHERE k = 2").fetchall()
        assert got == [("ab", b"a\x00b")]
        assert cur.execute(f"SELECT v FROM {nul_table} WHERE k = 1").fetchall() == [("plain",)]


def test_inside_a_transaction_the_error_is_as_any_other(pg: PgServer, nul_table: str) -> None:
    """Cairn commits every statement on its own (docs/pgwire.md): after the
    error the transaction goes on, as after any other error."""
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(psycopg.errors.UntranslatableCharacter):
            conn.execute(f"SELECT v FROM {nul_table}")
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_no_row_is_sent_before_the_error_simple_and_extended(
        pg: PgServer, nul_table: str) -> None:
    """The NUL is in the second row: neither RowDescription nor the first
    row goes before the ErrorResponse (binary result format too)."""
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", f"SELECT k, v FROM {nul_table} ORDER BY k\x00".encode()))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
    assert _fields(msgs[0][1])["C"] == "22P05"
    for describe in (b"", _msg(b"D", b"P\x00")):
        sock.sendall(_msg(b"P", f"\x00SELECT k, v FROM {nul_table} ORDER BY k\x00\x00\x00"
                          .encode())
                     + _msg(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01")  # all binary
                     + describe + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))
        msgs = _read_all(sock)
        assert [m[0] for m in msgs] == [b"1", b"2", b"E", b"Z"], msgs
        assert _fields(msgs[2][1])["C"] == "22P05"
    sock.sendall(_msg(b"Q", f"SELECT v FROM {nul_table} WHERE k = 1\x00".encode()))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"]
    assert msgs[1][1].endswith(b"plain")
    sock.close()


def test_what_writes_a_nul_otherwise_is_sent(pg: PgServer, nul_table: str) -> None:
    """JSON text (a LIST's, STRUCT's, a json value) writes it `\\u0000`; bytea as hex."""
    sql = (f"SELECT [v] AS l, {{'s': v}} AS s, to_json(v) AS j, encode(v) AS b "
           f"FROM {nul_table} WHERE k = 2")
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", sql.encode() + b"\x00"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"], msgs
    assert b'["a\\u0000b"]' in msgs[1][1] and b"\\x610062" in msgs[1][1]
    sock.close()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    assert row[0] == ["a\x00b"] and row[1] == {"s": "a\x00b"} and row[3] == b"a\x00b"
    assert json.loads(row[2]) == "a\x00b"


def test_psql_is_told_rather_than_shown_a_cut_value(pg: PgServer, nul_table: str) -> None:
    """psql printed `a` for 'a\\0b'; and `\\d` shows a DEFAULT holding a NUL
    with chr(0) (a field cannot carry it)."""
    out = psql(pg, "-At", "-c", f"SELECT v FROM {nul_table} WHERE k = 2", check=False)
    assert out.returncode != 0 and out.stdout == "", out
    assert 'column "v" holds a NUL character' in out.stderr
    status, body = pg.proc.post("CREATE TABLE nulns.d (k INT, v TEXT DEFAULT 'p\x00q')")
    assert status == 200, body
    described = psql(pg, "-c", r"\d nulns.d").stdout
    assert "('p' || chr(0) || 'q')" in described, described
    got = psql(pg, "-At", "-c", "SELECT column_default FROM information_schema.columns "
                                "WHERE table_name = 'd' AND column_name = 'v'").stdout
    assert got.strip() == "('p' || chr(0) || 'q')"


def test_a_nul_is_found_in_every_form_of_arrow_text() -> None:
    def first(array: pa.Array, oid: int = t.TEXT) -> str | None:
        return nultext.in_table([("c", oid)], pa.table({"c": array}))

    with_nul = pa.array(["a", "b\x00"])
    assert first(with_nul) == "c"
    assert first(with_nul.slice(0, 1)) is None  # the buffer beyond the slice is not the answer's
    assert first(pa.array(["a", "b\x00"], pa.large_string())) == "c"
    assert first(pa.array(["a", "b\x00"], pa.string_view())) == "c"
    assert first(with_nul.dictionary_encode()) == "c"  # an ENUM
    unused = pa.DictionaryArray.from_arrays(pa.array([0, 0]), pa.array(["a", "b\x00"]))
    assert first(unused) is None
    assert first(pa.chunked_array([pa.array(["x"]), pa.array(["y\x00"])])) == "c"
    assert first(pa.array([None, None], pa.string())) is None
    assert first(pa.array([b"\x00"])) is None  # bytea: hex
    assert first(pa.array(["\x00"]), t.JSON) is None  # json text: \u0000
    assert nultext.in_rows([("a", t.TEXT), ("b", t.TEXT)], [["x", "y"], ["x", "\x00"]]) == "b"
    assert nultext.in_rows([("a", t.JSON)], [["\x00"]]) is None


def test_a_default_holding_nul_is_written_with_chr() -> None:
    assert default_text("p\x00q") == "('p' || chr(0) || 'q')"
    assert default_text("\x00") == "(chr(0))"
    assert default_text("it's' || x\x00\x00") == "('it''s'' || x' || chr(0) || chr(0))"
    assert default_text("it's") == "'it''s'"

