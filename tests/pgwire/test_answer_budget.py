"""Answers built and not yet sent over the PostgreSQL protocol (`[server]
max_answer_bytes_total`, server/answers.py): one role user's 24 connections
each sending a ~60 MB SELECT and reading nothing held 1.9 GB (the same user
may open 200), 1.2 GB of it still held after the sockets closed."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_kept import _bind, _error_code, _execute, _parse, _round, _simple
from tests.pgwire.test_protocol import _connect, _msg

EVE, BOB, ROOT = "eve-51c0a2", "bob-7e93d4", "root-0b6f18"
# ~12 MB of values: more than the kernel's socket buffers take from a client
# that reads nothing, so the server keeps the rest of it while the test runs.
BIG = "SELECT i, repeat('x', 1000) || i AS v FROM range(12000) t(i)"
CONFIG = (
    "[server]\nmax_result_bytes = 16777216\n"  # the floor, 2 of them, is a role user's share
    "max_answer_bytes_total = 100663296\n"  # 96 MiB: a share is 24 MiB, two answers not three
    "{extra}"
    '[auth]\nmode = "token"\n'
    f'[[auth.tokens]]\ntoken = "{ROOT}"\nuser = "root"\nrole = "admin"\n'
    f'[[auth.tokens]]\ntoken = "{EVE}"\nuser = "eve"\nrole = "user"\n'
    f'[[auth.tokens]]\ntoken = "{BOB}"\nuser = "bob"\nrole = "user"\n'
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PgServer]:
    yield from _start(tmp_path, CONFIG.format(extra=""))


def _held(pg: PgServer) -> float:
    req = urllib.request.Request(pg.proc.url + "/metrics",
                                 headers={"Authorization": f"Bearer {ROOT}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    return next(float(line.split()[1]) for line in text.splitlines()
                if line.startswith("cairn_answer_bytes_held "))


def _until(check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the state never came"
        time.sleep(0.05)


def _unread(pg: PgServer, sql: str) -> psycopg.Connection:
    """A connection that sends `sql` and never reads its answer."""
    conn = psycopg.connect(pg.dsn("eve", password=EVE), autocommit=True)
    sock = socket.socket(fileno=conn.pgconn.socket)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    finally:
        sock.detach()
    conn.pgconn.send_query(sql.encode())
    conn.pgconn.flush()
    return conn


def test_a_role_user_holds_a_quarter_of_the_answers_and_others_are_answered(
        server: PgServer) -> None:
    held = [_unread(server, BIG) for _ in range(2)]
    try:
        _until(lambda: _held(server) > 24_000_000)  # both answers made, neither read
        with psycopg.connect(server.dsn("eve", password=EVE), autocommit=True) as third:
            with pytest.raises(psycopg.OperationalError) as refused:
                third.execute(BIG)
            assert refused.value.sqlstate == "53200"
            message = str(refused.value)
            assert "user 'eve' holds" in message and "share" in message, message
            assert "[server] max_answer_bytes_total (100663296)" in message, message
            assert third.execute("SELECT 7").fetchone() == (7,)  # the connection goes on
            started = time.monotonic()  # another user is answered at once
            with psycopg.connect(server.dsn("bob", password=BOB), autocommit=True) as bob:
                assert bob.execute("SELECT 42").fetchone() == (42,)
            assert time.monotonic() - started < 15
            for conn in held:
                conn.close()  # the connections end: what they held is the server's again
            _until(lambda: _held(server) == 0)
            assert len(third.execute(BIG).fetchall()) == 12000
        _until(lambda: _held(server) == 0)
        server.proc.stop()  # its log is whole once it has exited
        log = server.proc.log()
        assert "Traceback" not in log, log[-3000:]
    finally:
        for conn in held:
            conn.close()


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[PgServer]:
    yield from _start(tmp_path, CONFIG.format(extra="send_timeout_seconds = 3\n"))


def test_an_answer_whose_send_times_out_is_given_back(timed: PgServer) -> None:
    conn = _unread(timed, BIG)
    try:
        _until(lambda: _held(timed) > 12_000_000)
        started = time.monotonic()
        _until(lambda: _held(timed) == 0)  # the client never reads: only the timeout ends it
        assert time.monotonic() - started < 30
    finally:
        conn.close()
    timed.proc.stop()  # its log is whole once it has exited
    assert "(send_timeout_seconds): connection closed" in timed.proc.log()


def test_portals_holding_rows_count_until_closed_or_the_transaction_ends(
        pg: PgServer) -> None:
    """A portal suspended with rows left holds them between messages."""
    sock = _connect(pg)
    try:
        sql = BIG.replace("12000", "2000").encode()
        assert _error_code(_simple(sock, b"BEGIN")) is None
        for portal in (b"p1", b"p2"):
            got = _round(sock, _parse(b"", sql) + _bind(portal, b"") + _execute(portal, 10))
            assert [tag for tag, _ in got].count(b"D") == 10 and got[-2][0] == b"s", got[-3:]
        assert _held(pg) > 4_000_000
        closed = _round(sock, _msg(b"C", b"Pp1\x00"))
        assert _error_code(closed) is None
        assert 1_000_000 < _held(pg) < 3_000_000
        assert _error_code(_simple(sock, b"COMMIT")) is None  # p2 ends with it
        assert _held(pg) == 0
    finally:
        sock.close()
