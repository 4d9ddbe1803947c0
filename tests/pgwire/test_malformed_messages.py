"""A malformed message after log-in (a Bind whose counts, lengths or format
codes are wrong, a cut or overlong Parse, Describe, Execute, Close, Query,
Flush or Sync): its length said where it ends, so nothing of it is misread,
and PostgreSQL 15 answers it with an ERROR (08P01, 22023 for a format code),
skipping to Sync in the extended protocol, the connection and its block
going on. Until 2026-12-08 Cairn answered FATAL and closed the connection
(the FunctionCall's were fixed that morning: test_fastpath.py)."""

from __future__ import annotations

import struct

import psycopg
import pytest

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _connect, _fields, _msg, _read_all

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _parse(sql: bytes, oids: tuple[int, ...] = ()) -> bytes:
    return _msg(b"P", b"\x00" + sql + b"\x00" + struct.pack("!H", len(oids))
                + b"".join(struct.pack("!I", o) for o in oids))


def _bind(fcodes: tuple[int, ...] = (), values: tuple[bytes | None, ...] = (),
          rcodes: tuple[int, ...] = (), raw: bytes | None = None) -> bytes:
    body = b"\x00\x00" + struct.pack("!H", len(fcodes)) + b"".join(
        struct.pack("!h", c) for c in fcodes)
    if raw is None:
        raw = struct.pack("!H", len(values)) + b"".join(
            struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
            for v in values)
    return body + raw + struct.pack("!H", len(rcodes)) + b"".join(
        struct.pack("!h", c) for c in rcodes)


ONE = _parse(b"SELECT $1::int AS v", (23,))  # one parameter
EXECUTE, SYNC = _msg(b"E", b"\x00\x00\x00\x00\x00"), _msg(b"S")
SHORT = "insufficient data left in message"

CASES = [  # (messages, what is answered before the error, code, words), each checked on PG 15.18
    (ONE + _msg(b"B", _bind(raw=struct.pack("!Hi", 1, -5) + b"xx")) + EXECUTE + SYNC,
     [b"1"], "08P01", SHORT),  # a negative length
    (ONE + _msg(b"B", _bind(raw=struct.pack("!Hi", 1, 1000) + b"7")) + EXECUTE + SYNC,
     [b"1"], "08P01", SHORT),  # a length past the message
    (ONE + _msg(b"B", _bind(raw=struct.pack("!H", 65535))) + EXECUTE + SYNC,
     [b"1"], "08P01", SHORT),  # 65,535 values, none there
    (ONE + _msg(b"B", _bind(values=(b"7",))[:-2]) + EXECUTE + SYNC, [b"1"], "08P01", SHORT),
    (ONE + _msg(b"B", _bind(values=(b"7",)) + b"x") + EXECUTE + SYNC,
     [b"1"], "08P01", "after its contents"),
    (ONE + _msg(b"B", b"\x00abc") + EXECUTE + SYNC, [b"1"], "08P01", "not terminated"),
    (ONE + _msg(b"B", _bind((0, 0), (b"7",))) + EXECUTE + SYNC,
     [b"1"], "08P01", "has 2 parameter formats but 1 parameters"),
    (ONE + _msg(b"B", _bind((2,), (b"7",))) + EXECUTE + SYNC,
     [b"1"], "22023", "unsupported format code: 2"),
    (ONE + _msg(b"B", _bind((-1,), (None,))) + EXECUTE + SYNC,
     [b"1"], "22023", "unsupported format code: -1"),
    (ONE + _msg(b"B", _bind(values=(b"7",), rcodes=(3,))) + EXECUTE + SYNC,
     [b"1"], "22023", "unsupported format code: 3"),  # PostgreSQL: at Execute
    (_msg(b"P", b"\x00SELECT 1\x00\x00\x01") + SYNC, [], "08P01", SHORT),
    (_msg(b"P", b"\x00SELECT 1\x00\x00\x00junk") + SYNC, [], "08P01", "after its contents"),
    (_msg(b"P", b"\x00SELECT 1") + SYNC, [], "08P01", "not terminated"),
    (_msg(b"D", b"Xname\x00") + SYNC, [], "08P01", "invalid DESCRIBE message subtype 88"),
    (_msg(b"D", b"") + SYNC, [], "08P01", SHORT),
    (_msg(b"D", b"S\x00\x00") + SYNC, [], "08P01", "after its contents"),
    (_parse(b"SELECT 1 AS v") + _msg(b"B", _bind()) + _msg(b"E", b"\x00\x00\x00") + SYNC,
     [b"1", b"2"], "08P01", SHORT),
    (_msg(b"E", b"\x00\x00\x00\x00\x00\x00") + SYNC, [], "08P01", "after its contents"),
    (_msg(b"C", b"Xname\x00") + SYNC, [], "08P01", "invalid CLOSE message subtype 88"),
    (_msg(b"C", b"S\x00x") + SYNC, [], "08P01", "after its contents"),
    (_msg(b"Q", b"SELECT 1\x00SELECT 2\x00"), [], "08P01", "after its contents"),
    (_msg(b"Q", b"SELECT 1"), [], "08P01", "not terminated"),
    (_msg(b"H", b"x") + SYNC, [], "08P01", "after its contents"),
    (_msg(b"S", b"x"), [], "08P01", "after its contents"),
]
IDS = ["bind_negative_length", "bind_length_past_end", "bind_65535_values", "bind_cut",
       "bind_trailing", "bind_unterminated_name", "bind_format_count", "bind_format_2",
       "bind_format_negative", "bind_result_format", "parse_cut", "parse_trailing",
       "parse_unterminated", "describe_kind", "describe_empty", "describe_trailing",
       "execute_cut", "execute_trailing", "close_kind", "close_trailing", "query_trailing",
       "query_unterminated", "flush_trailing", "sync_trailing"]


@pytest.mark.parametrize(("sent", "before", "code", "said"), CASES, ids=IDS)
def test_a_malformed_message_is_an_error_and_the_connection_lives_on(
        pg: PgServer, sent: bytes, before: list[bytes], code: str, said: str) -> None:
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"BEGIN\x00"))
    assert [m[0] for m in _read_all(sock)] == [b"C", b"Z"]
    sock.sendall(sent)
    msgs = _read_all(sock, timeout=5)
    assert [m[0] for m in msgs] == [*before, b"E", b"Z"], msgs  # nothing of it ran
    error = _fields(msgs[-2][1])
    assert (error["S"], error["C"]) == ("ERROR", code), error
    assert said in error["M"], error
    assert msgs[-1][1] == b"T"  # the block goes on (PostgreSQL: E, failed; Cairn has no E)
    sock.sendall(_parse(b"SELECT $1::int AS v", (23,)) + _msg(b"B", _bind(values=(b"7",)))
                 + EXECUTE + SYNC)  # the extended protocol too
    assert [m[0] for m in _read_all(sock)] == [b"1", b"2", b"D", b"C", b"Z"]
    sock.sendall(_msg(b"Q", b"SELECT 7\x00"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"], msgs
    assert msgs[1][1].endswith(b"7")
    sock.close()


def test_a_bad_result_format_code_is_refused_before_the_statement_runs(pg: PgServer) -> None:
    """Refused at Bind (22023), so an INSERT … RETURNING writes nothing.
    PostgreSQL checks it at the first row sent and rolls the INSERT back;
    Cairn commits each statement, so checking it there would leave the row
    written behind the error."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS malformed_ns")
        conn.execute("CREATE TABLE IF NOT EXISTS malformed_ns.t (k INT PRIMARY KEY)")
        conn.execute("DELETE FROM malformed_ns.t")
    sock = _connect(pg)
    sock.sendall(_parse(b"INSERT INTO malformed_ns.t VALUES (1) RETURNING k")
                 + _msg(b"B", _bind(rcodes=(2,))) + EXECUTE + SYNC)
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"E", b"Z"], msgs
    assert _fields(msgs[1][1])["C"] == "22023"
    sock.close()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM malformed_ns.t").fetchone() == (0,)
