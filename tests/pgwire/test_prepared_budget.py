"""What all connections keep together in prepared statements and portals
(`[pgwire] max_prepared_bytes_total`, server/budget.py). The per-connection
bound alone let 30 idle connections of 4 × 9 MB statements add 1 GB to the
server (200 connections: ~7 GB)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_kept import _error_code, _fields, _parse, _round, _simple
from tests.pgwire.test_protocol import _connect, _msg, _read_all

REQUEST = 64 * 1024  # the test server's [server] max_request_bytes
TOTAL = 270_000  # its [pgwire] max_prepared_bytes_total: 4 × REQUEST (the floor) and a bit
INFLIGHT = 150_000  # its [server] max_inflight_request_bytes: two messages of 60 KB, not three
TEXT = b"SELECT '" + b"x" * 58_000 + b"' AS c"


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from _start(tmp_path_factory.mktemp("prepared_total"),
                      f"[server]\nmax_request_bytes = {REQUEST}\n"
                      f"max_inflight_request_bytes = {INFLIGHT}\n"
                      f"[pgwire]\nmax_prepared_bytes_total = {TOTAL}\n")


def test_statements_past_the_servers_total_are_53200_until_a_connection_closes(
        budgeted: PgServer) -> None:
    first = _connect(budgeted)
    for i in range(4):  # within this connection's own 4 × max_request_bytes
        assert _error_code(_round(first, _parse(b"s%d" % i, TEXT))) is None
    other = _connect(budgeted)
    try:
        refused = _round(other, _parse(b"big", TEXT))
        errors = [_fields(body) for tag, body in refused if tag == b"E"]
        assert errors and errors[0]["C"] == "53200", refused
        assert "max_prepared_bytes_total" in errors[0]["M"]
        # The connection stays usable, and a small statement still fits.
        assert any(tag == b"D" for tag, _ in _simple(other, b"SELECT 42"))
        assert _error_code(_round(other, _parse(b"small", b"SELECT 2"))) is None
        first.close()  # what it kept is the server's again
        for _ in range(200):
            if _error_code(_round(other, _parse(b"big", TEXT))) is None:
                break
        else:
            pytest.fail("the closed connection's statements were never given back")
        # A new connection keeps statements too.
        third = _connect(budgeted)
        try:
            assert _error_code(_round(third, _parse(b"t", TEXT))) is None
        finally:
            third.close()
    finally:
        other.close()
        first.close()


def test_messages_being_received_past_the_servers_budget_are_refused(
        budgeted: PgServer) -> None:
    """A message is read whole before it is handled, up to max_request_bytes:
    200 connections each sending 10 MB but its last byte held 2 GB, outside
    `[server] max_inflight_request_bytes` until 2026-12-06. Now a message that
    does not fit is a FATAL 53200 and its connection is closed."""
    query = _msg(b"Q", b"SELECT '" + b"x" * 59_000 + b"' AS c\x00")
    stalled = []
    for _ in range(2):
        sock = _connect(budgeted)
        sock.sendall(query[:-1])  # all of it but its last byte
        stalled.append(sock)

    def one_more() -> list[tuple[bytes, bytes]]:
        sock = _connect(budgeted)
        try:
            sock.sendall(query[:5])  # its header: a refusal comes before its body is read
            if not select.select([sock], [], [], 0.3)[0]:
                sock.sendall(query[5:])
            return _read_all(sock)
        finally:
            sock.close()

    try:
        for _ in range(100):  # the stalled ones' headers may not be read yet
            answer = one_more()
            if _error_code(answer) is not None:
                break
            time.sleep(0.05)
        assert _error_code(answer) == "53200", answer
        assert b"max_inflight_request_bytes" in answer[0][1]
        other = _connect(budgeted)  # small messages are never refused
        try:
            assert any(tag == b"D" for tag, _ in _simple(other, b"SELECT 42"))
        finally:
            other.close()
        stalled.pop().close()  # its bytes are the server's again
        for _ in range(100):
            answer = one_more()
            if _error_code(answer) is None:
                break
            time.sleep(0.05)
        assert any(tag == b"D" for tag, _ in answer), answer
        last = stalled.pop()
        last.sendall(query[-1:])  # the last byte: the stalled query is answered
        assert any(tag == b"D" for tag, _ in _read_all(last))
        last.close()
    finally:
        for sock in stalled:
            sock.close()


@pytest.fixture(scope="module")
def hasty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from _start(tmp_path_factory.mktemp("hasty"),
                      f"[server]\nmax_request_bytes = {REQUEST}\n"
                      f"max_inflight_request_bytes = {INFLIGHT}\nbody_timeout_seconds = 1\n")


def test_a_message_that_stops_after_its_header_is_closed_and_gives_its_bytes_back(
        hasty: PgServer) -> None:
    """A header alone (`Q` and a length of 60 KB) held its size of the budget
    for as long as the client stayed silent: 26 such sockets of a role
    user's made every HTTP request 503 for good (a regress pass)."""
    query = _msg(b"Q", b"SELECT '" + b"x" * 59_000 + b"' AS c\x00")
    silent = [_connect(hasty) for _ in range(2)]  # 118 KB of the 150 KB
    try:
        for sock in silent:
            sock.sendall(query[:5])
        for sock in silent:
            answer = _read_all(sock, timeout=10)
            errors = [_fields(body) for tag, body in answer if tag == b"E"]
            assert errors and errors[0]["C"] == "08P01", answer
            assert "did not arrive within 1 s" in errors[0]["M"]
        sock = _connect(hasty)  # what they held is the server's again
        try:
            sock.sendall(query)
            assert any(tag == b"D" for tag, _ in _read_all(sock))
        finally:
            sock.close()
    finally:
        for sock in silent:
            sock.close()


SHARED = 1_200_000  # max_prepared_bytes_total of the token server: a role user's share 300,000


@pytest.fixture(scope="module")
def shared_by_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from _start(tmp_path_factory.mktemp("prepared_share"),
                      f"[server]\nmax_request_bytes = {REQUEST}\n"
                      f"[pgwire]\nmax_prepared_bytes_total = {SHARED}\n"
                      '[auth]\nmode = "token"\n'
                      '[[auth.tokens]]\ntoken = "t-eve"\nuser = "eve"\nrole = "user"\n'
                      '[[auth.tokens]]\ntoken = "t-bob"\nuser = "bob"\nrole = "user"\n')


def test_one_role_user_keeps_at_most_a_quarter_of_the_servers_total(
        shared_by_users: PgServer) -> None:
    """Any one user could keep the whole total in prepared statements, and
    every other user's Parse was 53200; now a role user keeps a quarter."""
    def big(i: int) -> str:
        return f"SELECT '{'x' * 40_000}' AS c, {i} AS i"

    def connect(token: str) -> psycopg.Connection[Any]:
        return psycopg.connect(shared_by_users.dsn(user="x", password=token), autocommit=True)

    with connect("t-eve") as first, connect("t-eve") as second, connect("t-bob") as bob:
        for i in range(4):  # ~160,000 bytes: within the connection's own 262,144
            first.execute(big(i), prepare=True)
        kept = 0
        with pytest.raises(psycopg.errors.OutOfMemory) as refused:  # 53200
            for i in range(4, 8):  # eve's share (300,000) ends before this connection's bound
                second.execute(big(i), prepare=True)
                kept += 1
        assert 1 <= kept < 4
        assert refused.value.sqlstate == "53200", refused.value
        assert "user 'eve'" in str(refused.value) and "share (300000)" in str(refused.value)
        for i in range(4):  # another role user still keeps as many
            assert bob.execute(big(10 + i), prepare=True).fetchone()[1] == 10 + i
        first.close()  # eve's bytes are given back
        assert second.execute(big(20), prepare=True).fetchone()[1] == 20
