"""A role user's share of the PostgreSQL listener's connections
(server/pgwire/server.py `_admit`). One role user's 200 idle logged-in
connections took every slot: other users and the admins were refused
"sorry, too many clients already" for as long as it kept them. Now one role
user holds at most a quarter of them, role users together all but three, and
an admin can always connect."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.budget import ADMIN_RESERVED
from server.pgwire.server import MAX_CONNECTIONS
from tests.pgwire.conftest import PgServer, _start, self_signed
from tests.pgwire.test_portal_rows import scram_finish, scram_start
from tests.pgwire.test_protocol import _msg, _read_all

USERS = ["mallory", "bob", "carol", "dave"]
CONFIG = ('[auth]\nmode = "token"\n'
          '[[auth.tokens]]\ntoken = "root-77c1"\nuser = "root"\nrole = "admin"\n') + "".join(
    f'[[auth.tokens]]\ntoken = "{u}-77c1"\nuser = "{u}"\nrole = "user"\n' for u in USERS)
SHARE = MAX_CONNECTIONS // 4


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PgServer]:
    yield from _start(tmp_path, CONFIG)


def _connect(pg: PgServer, user: str) -> psycopg.Connection[Any]:
    return psycopg.connect(pg.dsn(user, password=f"{user}-77c1"), autocommit=True,
                           connect_timeout=30)


def _refused(pg: PgServer, user: str) -> psycopg.OperationalError:
    with pytest.raises(psycopg.OperationalError) as info:
        _connect(pg, user).close()
    return info.value


def test_one_role_user_holds_a_quarter_and_admins_keep_their_slots(server: PgServer) -> None:
    held: list[psycopg.Connection[Any]] = []
    try:
        held += [_connect(server, "mallory") for _ in range(SHARE)]
        err = _refused(server, "mallory")
        assert 'too many connections for user "mallory"' in str(err), err
        # The others are not locked out by her, and hers still answer.
        for user in ("bob", "root"):
            with _connect(server, user) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        assert held[0].execute("SELECT 2").fetchone() == (2,)
        # Role users together take all but the admins' reserve.
        held += [_connect(server, "bob") for _ in range(SHARE)]
        held += [_connect(server, "carol") for _ in range(SHARE)]
        held += [_connect(server, "dave") for _ in range(SHARE - ADMIN_RESERVED)]
        err = _refused(server, "dave")
        assert "reserved for admins" in str(err), err
        admins = [_connect(server, "root") for _ in range(ADMIN_RESERVED)]
        for conn in admins:
            assert conn.execute("SELECT 3").fetchone() == (3,)
            conn.close()
        # A role user's connection that ends gives its slot back, to her
        # share and to the role users' slots.
        mine = next(c for c in held if c.info.user == "mallory")
        mine.close()
        held.remove(mine)
        held.append(_connect(server, "mallory"))
        assert held[-1].execute("SELECT 4").fetchone() == (4,)
        err = _refused(server, "dave")
        assert "reserved for admins" in str(err), err
    finally:
        for conn in held:
            conn.close()


def _idle_sockets(pg: PgServer, n: int) -> list[socket.socket]:
    """`n` connections that never send a byte (no start-up, no token)."""
    return [socket.create_connection(("127.0.0.1", pg.port), timeout=30) for _ in range(n)]


def _said(sock: socket.socket) -> bytes:
    """What the server wrote before closing `sock` (b"" if it wrote nothing)."""
    sock.settimeout(30)
    out = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(4096):
            out += chunk
    return out


def test_sockets_that_never_log_in_do_not_lock_anyone_out(server: PgServer) -> None:
    """Every place held by sockets that sent nothing (a stranger needs no
    token for that) refused an admin and everyone else 'sorry, too many
    clients already', the admins' reserve included, for as long as the
    sockets were renewed (each lived STARTUP_TIMEOUT, 30 s). Now the oldest
    connection still starting gives its place to a newer one."""
    idle = _idle_sockets(server, MAX_CONNECTIONS + 5)
    try:
        for user in ("root", "mallory"):
            with _connect(server, user) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        # The first sockets gave their places, and were told why.
        said = _said(idle[0])
        assert b"53300" in said and b"had not logged in" in said, said
        # Connections that have logged in keep theirs: the places all taken by
        # them, one more is refused, and none of them is closed.
        held = [_connect(server, "root") for _ in range(MAX_CONNECTIONS)]
        try:
            with pytest.raises(psycopg.OperationalError, match="too many clients"):
                psycopg.connect(server.dsn("root", password="root-77c1", sslmode="disable"))
            assert all(c.execute("SELECT 2").fetchone() == (2,) for c in held)
        finally:
            for conn in held:
                conn.close()
    finally:
        for sock in idle:
            sock.close()


def test_a_login_under_way_keeps_its_place_beside_a_flood_of_silent_sockets(
        server: PgServer) -> None:
    """The oldest connection not logged in made room for each newcomer, the
    one in the middle of its SCRAM exchange as soon as a silent socket: a
    flood of sockets that never sent a byte closed admins while they logged
    in (7 of 182 at ~360 sockets a second). Now a silent one goes first."""
    sock, first, server_first = scram_start(server.port, b"root")
    idle = _idle_sockets(server, MAX_CONNECTIONS + 5)  # the place of the login is wanted
    try:
        assert b"53300" in _said(idle[0])  # room was made, from the silent ones
        msgs = scram_finish(sock, "root-77c1", first, server_first)
        assert msgs[-1] == (b"Z", b"I"), msgs
    finally:
        sock.close()
        for s in idle:
            s.close()


def _login(pg: PgServer) -> tuple[socket.socket, bytes | None]:
    """A raw logged-in connection (auth none) and its BackendKeyData (None
    when refused)."""
    sock = socket.create_connection(("127.0.0.1", pg.port), timeout=30)
    body = struct.pack("!i", 196608) + b"user\x00root\x00database\x00cairn\x00\x00"
    sock.sendall(struct.pack("!i", len(body) + 4) + body)
    msgs = _read_all(sock)
    keys = [msg for tag, msg in msgs if tag == b"K"]
    return sock, keys[0] if keys and msgs[-1][0] == b"Z" else None


def test_a_cancel_is_served_while_logged_in_connections_hold_every_place(
        tmp_path: Path) -> None:
    """PostgreSQL serves a CancelRequest whatever max_connections; with every
    place held by a logged-in connection, Cairn refused it 'sorry, too many
    clients already': a client could not cancel its own runaway query."""
    gen = _start(tmp_path)
    pg = next(gen)
    held: list[socket.socket] = []
    try:
        first, key = _login(pg)
        held.append(first)
        assert key is not None
        while True:
            sock, got = _login(pg)
            if got is None:
                sock.close()
                break
            held.append(sock)
        assert len(held) >= 16
        first.sendall(_msg(b"Q", b"SELECT count(*) FROM range(1000000000000) a\x00"))
        first.settimeout(60)
        cancel = socket.create_connection(("127.0.0.1", pg.port), timeout=30)
        cancel.sendall(struct.pack("!ii", 16, 80877102) + key)
        assert b"53300" not in _said(cancel)
        msgs = _read_all(first, timeout=60)
        assert any(tag == b"E" and b"57014" in msg for tag, msg in msgs), msgs
        # Anything else but a cancel is still refused.
        sock = socket.create_connection(("127.0.0.1", pg.port), timeout=30)
        body = struct.pack("!i", 196608) + b"user\x00root\x00database\x00cairn\x00\x00"
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        assert b"53300" in _said(sock)
    finally:
        for sock in held:
            sock.close()
        with contextlib.suppress(StopIteration):
            next(gen)


def test_a_tls_connection_made_room_for_lets_go_of_its_socket(tmp_path: Path) -> None:
    """A connection closed to make room that had finished its TLS handshake
    kept its socket for up to 30 s (asyncio waits that long for the silent
    peer's close_notify), outside the count of places: 500 silent TLS
    sockets held 500 descriptors for 200 places, and a flood at a few dozen
    a second ran a server with a low open-files limit out of them."""
    cert, key = self_signed(tmp_path)
    gen = _start(tmp_path / "s", f'[pgwire]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    pg = next(gen)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    assert pg.proc.proc is not None
    fds = Path(f"/proc/{pg.proc.proc.pid}/fd")
    before = len(os.listdir(fds))
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS + 100):
            sock = socket.create_connection(("127.0.0.1", pg.port), timeout=30)
            sock.sendall(struct.pack("!ii", 8, 80877103))
            assert sock.recv(1) == b"S"
            held.append(ctx.wrap_socket(sock))
        deadline = time.monotonic() + 15  # the linger was 30 s
        while len(os.listdir(fds)) > before + MAX_CONNECTIONS + 20:
            assert time.monotonic() < deadline, len(os.listdir(fds)) - before
            time.sleep(0.2)
    finally:
        for sock in held:
            sock.close()
        with contextlib.suppress(StopIteration):
            next(gen)


def test_a_tls_login_refused_lets_go_of_its_socket(tmp_path: Path) -> None:
    """A TLS connection ended by the server (here FATAL 28000, no user name)
    gave its place back at once but kept its socket up to 30 s, waiting for
    the silent peer's TLS close: a flood of refused TLS logins, each a few
    milliseconds and no token, held a descriptor each for 30 s."""
    cert, key = self_signed(tmp_path)
    gen = _start(tmp_path / "s", f'[pgwire]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    pg = next(gen)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    assert pg.proc.proc is not None
    fds = Path(f"/proc/{pg.proc.proc.pid}/fd")
    before = len(os.listdir(fds))
    held: list[socket.socket] = []
    body = struct.pack("!i", 196608) + b"database\x00cairn\x00\x00"
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", pg.port), timeout=30)
            sock.sendall(struct.pack("!ii", 8, 80877103))
            assert sock.recv(1) == b"S"
            tls = ctx.wrap_socket(sock)
            tls.sendall(struct.pack("!i", len(body) + 4) + body)
            assert b"28000" in tls.recv(4096)  # then silent: no TLS close sent back
            held.append(tls)
        deadline = time.monotonic() + 15  # the linger was 30 s
        while len(os.listdir(fds)) > before + 20:
            assert time.monotonic() < deadline, len(os.listdir(fds)) - before
            time.sleep(0.2)
    finally:
        for sock in held:
            sock.close()
        with contextlib.suppress(StopIteration):
            next(gen)
