"""The start-up packet read as PostgreSQL reads it (server/pgwire/server.py
`_startup_params`, `_startup`): its pairs end with a NUL that is its last byte,
a name is given once, and a client asking for a newer 3.x or a protocol option
(`_pq_.…`) is told 3.0 and none (NegotiateProtocolVersion). Before, bytes after
the end, or no end, were taken as they came; `user` twice took the second (in
auth mode none who is calling; a proxy reading the first would disagree); and
3.2 or `_pq_.` options were taken silently (libpq with min_protocol_version=3.2
believed it had 3.2; `_pq_.x` became a setting)."""

from __future__ import annotations

import socket
import struct

import psycopg
import pytest

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _PENDING, _fields, _read_all, _still_serving


def _packet(pairs: bytes, version: int = 196608) -> bytes:
    body = struct.pack("!i", version) + pairs
    return struct.pack("!i", len(body) + 4) + body


def _answer(pg: PgServer, packet: bytes) -> list[tuple[bytes, bytes]]:
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
        _PENDING.pop(sock.fileno(), None)
        sock.sendall(packet)
        return _read_all(sock, timeout=10)


@pytest.mark.parametrize(("pairs", "said"), [
    (b"user\x00raw\x00", "expected terminator as last byte"),  # no end
    (b"user\x00raw\x00database\x00", "not terminated"),  # a name without its value
    (b"user\x00raw\x00\x00options\x00-c x=1\x00\x00", "expected terminator as last byte"),
    (b"user\x00raw\x00\x00\x00", "expected terminator as last byte"),
    (b"", "expected terminator as last byte"),
    (b"user\x00raw\x00user\x00other\x00\x00", "'user' is sent twice"),
    (b"user\x00raw\x00search_path\x00a\x00search_path\x00b\x00\x00", "sent twice"),
])
def test_a_start_up_packet_laid_out_otherwise_is_fatal_08P01(
        pg: PgServer, pairs: bytes, said: str) -> None:
    msgs = _answer(pg, _packet(pairs))
    assert [tag for tag, _ in msgs] == [b"E"], msgs  # refused before authentication
    error = _fields(msgs[0][1])
    assert error["S"] == "FATAL" and error["C"] == "08P01" and said in error["M"], error
    _still_serving(pg)


def test_a_newer_minor_version_or_a_protocol_option_is_told_3_0(pg: PgServer) -> None:
    pairs = b"user\x00raw\x00_pq_.frob\x00on\x00database\x00cairn\x00\x00"
    for version, options in ((196608 | 2, [b"_pq_.frob"]), (196608, [b"_pq_.frob"]),
                             (196608 | 9, [b"_pq_.frob"])):
        msgs = _answer(pg, _packet(pairs, version))
        assert msgs[0][0] == b"v", msgs
        body = msgs[0][1]
        assert struct.unpack("!ii", body[:8]) == (196608, len(options)), body
        assert body[8:].split(b"\x00")[:-1] == options, body
        assert msgs[-1] == (b"Z", b"I"), msgs
        assert b"_pq_" not in b"".join(b for tag, b in msgs if tag == b"S")
    # Nothing to negotiate: no such message.
    msgs = _answer(pg, _packet(b"user\x00raw\x00\x00"))
    assert b"v" not in [tag for tag, _ in msgs] and msgs[-1] == (b"Z", b"I"), msgs
    # libpq takes the answer: 3.2 at most connects (3.0), 3.2 at least is refused.
    with psycopg.connect(pg.dsn(max_protocol_version="3.2"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="3.0"):
        psycopg.connect(pg.dsn(min_protocol_version="3.2", sslmode="disable"))


SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)


@pytest.mark.parametrize("asks", [SSL_REQUEST * 2, GSSENC_REQUEST * 2,
                                  GSSENC_REQUEST + SSL_REQUEST + GSSENC_REQUEST],
                         ids=["ssl-twice", "gssenc-twice", "gssenc-ssl-gssenc"])
def test_an_encryption_request_asked_again_is_fatal(pg: PgServer, asks: bytes) -> None:
    """Each is answered once (PostgreSQL's rule): an unauthenticated socket
    sending SSLRequests without end, never reading the 'N's, was served for as
    long as it liked, and two of them made everyone's SELECT 1 take ~2 s."""
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
        sock.sendall(asks)
        sock.settimeout(60)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    answered = len(asks) // 8 - 1
    assert got[:answered] == b"N" * answered, got[:20]
    error = _fields(got[answered + 5:])
    assert got[answered:answered + 1] == b"E" and error["S"] == "FATAL", got[:80]
    assert error["C"] == "0A000" and "unsupported frontend protocol 1234.56" in error["M"], error
    _still_serving(pg)


def test_gssenc_then_ssl_then_a_start_up_still_logs_in(pg: PgServer) -> None:
    """libpq's gssencmode=prefer asks for both before its start-up packet."""
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
        sock.sendall(GSSENC_REQUEST + SSL_REQUEST
                     + _packet(b"user\x00raw\x00database\x00cairn\x00\x00"))
        got = b""
        while len(got) < 2 and (chunk := sock.recv(2 - len(got))):
            got += chunk  # one 'N' a write: a recv may return the first alone
        assert got == b"NN"
        _PENDING.pop(sock.fileno(), None)
        msgs = _read_all(sock, timeout=10)
    assert msgs[-1][0] == b"Z" and not [m for m in msgs if m[0] == b"E"], msgs


def test_a_replication_connection_is_refused_before_the_login(pg: PgServer) -> None:
    """`replication=database` (logical decoding: Debezium, pg_recvlogical) or
    `true` (pg_basebackup, pg_receivewal) asks for a walsender: it was taken
    as an ordinary session, whose IDENTIFY_SYSTEM then met a syntax error.
    Refused as PostgreSQL refuses one it does not allow; `false` logs in."""
    for value, code in ((b"database", "0A000"), (b"true", "0A000"), (b"On", "0A000"),
                        (b"bogus", "22023")):
        msgs = _answer(pg, _packet(b"user\x00raw\x00replication\x00" + value + b"\x00\x00"))
        assert [tag for tag, _ in msgs] == [b"E"], msgs
        error = _fields(msgs[0][1])
        assert (error["S"], error["C"]) == ("FATAL", code), error
    msgs = _answer(pg, _packet(b"user\x00raw\x00replication\x00false\x00\x00"))
    assert msgs[-1] == (b"Z", b"I"), msgs
