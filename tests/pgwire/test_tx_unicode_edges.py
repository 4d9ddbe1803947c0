"""A transaction statement with U+00A0, U+0085 or U+3000 at its ends: the
statement splitter strips Python's whitespace there, so `COMMIT\\u00a0`
answered COMMIT (and `SAVEPOINT a\\u00a0` named `a`), where PostgreSQL 15's
lexer, whose whitespace is space, tab, CR, LF and form feed only, reads
`COMMIT\\u00a0` as one word: 42601. Fixed in pgwire's transaction-statement
reader only; what HTTP accepts is unchanged."""

from __future__ import annotations

import socket
import struct

import pytest

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _connect, _fields, _msg, _read_all

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def _query(sock: socket.socket, sql: str) -> list[tuple[bytes, bytes]]:
    sock.sendall(_msg(b"Q", sql.encode() + b"\x00"))
    return _read_all(sock)


def _codes(msgs: list[tuple[bytes, bytes]]) -> list[str]:
    return [_fields(body)["C"] for tag, body in msgs if tag == b"E"]


@pytest.mark.parametrize(("begin", "sql", "status"), [
    (True, "COMMIT\u00a0", b"T"),
    (True, "COMMIT\u0085", b"T"),
    (True, "\u00a0COMMIT", b"T"),
    (True, "ROLLBACK\u3000;", b"T"),
    (False, "\u0085BEGIN", b"I"),
    (False, "BEGIN\u3000", b"I"),
    (False, "BEGIN\u00a0; SELECT 1", b"I"),
])
def test_a_transaction_statement_with_such_a_character_at_an_end_is_42601(
        pg: PgServer, begin: bool, sql: str, status: bytes) -> None:
    sock = _connect(pg)
    if begin:
        assert _codes(_query(sock, "BEGIN")) == []
    msgs = _query(sock, sql)
    assert _codes(msgs) == ["42601"], msgs
    assert b"C" not in [tag for tag, _ in msgs], msgs  # nothing answered as done
    assert msgs[-1] == (b"Z", status), msgs  # the block, if any, neither ended nor begun
    sock.close()


def test_a_savepoint_name_keeps_such_a_character(pg: PgServer) -> None:
    sock = _connect(pg)
    assert _codes(_query(sock, "BEGIN")) == []
    assert _codes(_query(sock, "SAVEPOINT a\u00a0")) == []
    assert _codes(_query(sock, "RELEASE a")) == ["3B001"]  # savepoint "a" does not exist
    assert _codes(_query(sock, "RELEASE a\u00a0")) == []
    assert _codes(_query(sock, "COMMIT")) == []
    sock.close()


def test_a_parse_of_such_a_statement_is_42601(pg: PgServer) -> None:
    sock = _connect(pg)
    sock.sendall(_msg(b"P", b"\x00" + "COMMIT\u00a0".encode() + b"\x00" + struct.pack("!H", 0))
                 + _msg(b"S"))
    msgs = _read_all(sock)
    assert _codes(msgs) == ["42601"], msgs
    sock.close()


def test_other_statements_and_plain_ones_are_as_before(pg: PgServer) -> None:
    sock = _connect(pg)
    msgs = _query(sock, "SELECT 7 AS v\u00a0")  # as HTTP takes it: not a statement answered here
    assert _codes(msgs) == [] and msgs[1][1].endswith(b"7"), msgs
    for sql, status in [("BEGIN \t", b"T"), ("COMMIT\n\f", b"I"), ("\u00a0/* c */ SELECT 1", b"I")]:
        msgs = _query(sock, sql)
        assert _codes(msgs) == [] and msgs[-1] == (b"Z", status), (sql, msgs)
    sock.close()
