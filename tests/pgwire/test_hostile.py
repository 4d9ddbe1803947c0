"""Hostile but well-formed input: statements, parameters and message floods
that cost the server far more than they cost the client. Each must be
refused or answered without stopping the event loop for everyone else."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import psycopg
import pytest

from server.pgwire import chatter
from tests.pgwire.conftest import ADMIN_TOKEN, PgServer
from tests.pgwire.test_protocol import _PENDING, _connect, _fields, _msg, _read_all, _startup


def _other_client_answers(pg: PgServer, out: list[object]) -> None:
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            out.append(conn.execute("SELECT 42").fetchone())
    except Exception as exc:  # reported by the asserting thread
        out.append(exc)


def test_set_with_a_long_blank_run_is_answered_at_once(pg: PgServer) -> None:
    """`SET a = x` + 1,200 blanks + `y` took 8 s of the event loop (the SET
    pattern backtracked cubically); 20,000 blanks would take hours. Now the
    SET is answered and so is another client meanwhile."""
    sock = _connect(pg)
    sock.sendall(_msg(b"Q", b"SET a = x" + b" " * 20_000 + b"y\x00"))
    msgs = _read_all(sock, timeout=60)
    assert [m[0] for m in msgs] == [b"C", b"Z"], msgs
    sock.sendall(_msg(b"Q", b"SHOW a" + b" \t" * 20_000 + b";\x00"))
    msgs = _read_all(sock, timeout=60)
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"], msgs
    assert dict(msgs)[b"D"].endswith(b"x, y")
    sock.close()
    out: list[object] = []
    other = threading.Thread(target=_other_client_answers, args=(pg, out))
    other.start()
    other.join(60)
    assert out == [(42,)]


def test_every_set_form_still_reads() -> None:
    settings = chatter.Settings("u", {}, False)
    for sql, name, value in [
        ("SET a = 1;", "a", "1"), ("set session b to 'x' ; ", "b", "x"),
        ("SET LOCAL c.d = 'it''s', \"q\" , z;", "c.d", "it's, q, z"),
        ("SET\te\n=\n2\n;\n", "e", "2"), ("SET f TO x ; ;", "f", "x, ;"),
        ("SET TIME ZONE 'Europe/Paris';", "timezone", "Europe/Paris"),
        ("SET NAMES 'utf8'", "client_encoding", "UTF8"),
    ]:
        answer = chatter.answer(sql, settings, b"I")
        assert answer is not None and answer.tag == "SET", sql
        assert settings.values[name] == value, sql
    assert chatter.answer("SET a = DEFAULT ;", settings, b"I") is not None
    for sql in ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET ROLE x;",
                "RESET ALL ;", "DISCARD all;", "SHOW transaction isolation level ;"):
        assert chatter.answer(sql, settings, b"I") is not None, sql
    assert chatter.deallocated('DEALLOCATE PREPARE "x y" ;') == "x y"
    assert chatter.deallocated("DEALLOCATE ALL") == ""
    assert chatter.answer("SHOW TABLES", settings, b"I") is None
    assert chatter.answer("SELECT 1", settings, b"I") is None


def _scram_first(nonce: bytes) -> bytes:
    first = b"n,,n=,r=" + nonce
    return _msg(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first)


def _before_auth(pg: PgServer, data: bytes) -> list[tuple[bytes, bytes]]:
    """What the server answers to `data` sent after the authentication request."""
    with socket.create_connection(("127.0.0.1", pg.port), timeout=30) as sock:
        _PENDING.pop(sock.fileno(), None)
        sock.sendall(_startup("joe"))
        assert _read_all(sock, until=b"R")[-1][0] == b"R"
        with contextlib.suppress(OSError):  # the server may close before it has read all
            sock.sendall(data)
        return _read_all(sock, until=b"\xff", timeout=30)


def test_a_big_message_before_authentication_is_refused_08P01(pg_tls: PgServer) -> None:
    """A password message is read with a small limit (PostgreSQL's 65,535
    bytes): a 64 MB one was buffered whole for an unauthenticated socket."""
    msgs = _before_auth(pg_tls, _scram_first(b"A" * 1_000_000))
    assert [m[0] for m in msgs] == [b"E"], [m[0] for m in msgs]  # not the nonce echoed
    fields = _fields(msgs[0][1])
    assert (fields["S"], fields["C"]) == ("FATAL", "08P01"), fields
    assert "before authentication" in fields["M"]
    with psycopg.connect(pg_tls.dsn("x", password=ADMIN_TOKEN), autocommit=True) as conn:
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_a_long_scram_nonce_is_not_echoed(pg_tls: PgServer) -> None:
    msgs = _before_auth(pg_tls, _scram_first(b"A" * 2000))
    assert [m[0] for m in msgs] == [b"E"], [m[0] for m in msgs]
    fields = _fields(msgs[0][1])
    assert (fields["S"], fields["C"]) == ("FATAL", "28P01"), fields
    # libpq's 24-character nonce gets its server-first-message
    msgs = _before_auth(pg_tls, _scram_first(b"B" * 24))
    assert msgs[0][0] == b"R" and b"r=" + b"B" * 24 in msgs[0][1], msgs


def _bind_text(sql: bytes, oid: int, value: bytes) -> bytes:
    """Parse `sql` with one parameter of `oid`, Bind `value` as text, Execute, Sync."""
    return (_msg(b"P", b"\x00" + sql + b"\x00\x00\x01" + struct.pack("!i", oid))
            + _msg(b"B", b"\x00\x00\x00\x00\x00\x01" + struct.pack("!i", len(value)) + value
                   + b"\x00\x00")
            + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))


def _errors(msgs: list[tuple[bytes, bytes]]) -> list[dict[str, str]]:
    return [_fields(b) for tag, b in msgs if tag == b"E"]


@pytest.mark.parametrize("value", [b"1e200000000", b"-1e-200000000", b"1" * 1001])
def test_a_numeric_parameter_too_long_to_write_out_is_22003(pg: PgServer, value: bytes) -> None:
    """`1e200000000` is 12 bytes as a NUMERIC parameter and was written out as
    200 MB of digits on the event loop (30 s for every client)."""
    sock = _connect(pg)
    sock.sendall(_bind_text(b"SELECT $1::DOUBLE AS v", 1700, value))
    msgs = _read_all(sock, timeout=60)
    assert [e["C"] for e in _errors(msgs)] == ["22003"], msgs
    assert msgs[-1] == (b"Z", b"I")
    sock.sendall(_bind_text(b"SELECT $1::DOUBLE AS v", 1700, b"1.5e3"))
    msgs = _read_all(sock)
    assert not _errors(msgs) and dict(msgs)[b"D"][6:] == b"1500.0", msgs
    sock.close()
