"""The rows portals keep unsent count by their bytes against `[pgwire]
max_portal_rows_bytes_total` (server/pgwire/kept.py): a connection and a
role user a quarter each. Until 2026-12-06 only their number was bounded
(4 a connection): 8 connections of one role user, each with 4 portals
suspended after one row of a 60 MB answer, held 2.2 GB for as long as they
idled."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import socket
import struct
from collections.abc import Iterator

import pytest

from server.pgwire import kept
from server.pgwire.results import Reply
from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_kept import _bind, _error_code, _execute, _parse, _round, _simple
from tests.pgwire.test_protocol import _fields, _msg, _read_all

TOTAL = 16_000_000  # the test server's max_portal_rows_bytes_total: 4,000,000 a quarter
# 3,000 rows of ~1 KB: ~3.6 MB counted, so one fits a connection's quarter, two do not.
BIG = b"SELECT i, repeat('x', 1000) AS v FROM range(3000) t(i)"
CATALOG = (b"SELECT i, repeat('x', 1000) AS v FROM range(3000) t(i), pg_catalog.pg_namespace n"
           b" WHERE n.nspname = 'pg_catalog'")
HUGE = b"SELECT i, repeat('x', 1000) AS v FROM range(6000) t(i)"  # past a quarter alone


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    yield from _start(tmp_path_factory.mktemp("portal_rows"),
                      f"[pgwire]\nmax_portal_rows_bytes_total = {TOTAL}\n"
                      '[auth]\nmode = "token"\n'
                      '[[auth.tokens]]\ntoken = "t-eve"\nuser = "eve"\nrole = "user"\n'
                      '[[auth.tokens]]\ntoken = "t-bob"\nuser = "bob"\nrole = "user"\n'
                      '[[auth.tokens]]\ntoken = "t-root"\nuser = "root"\nrole = "admin"\n')


def scram_start(port: int, user: bytes = b"x") -> tuple[socket.socket, str, str]:
    """A raw connection half-way through its SCRAM-SHA-256 login: the start-up
    packet and the client-first message sent, the server-first read. Returns
    (socket, client-first-bare, server-first) for `scram_finish`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = struct.pack("!i", 196608) + b"user\x00" + user + b"\x00database\x00cairn\x00\x00"
    sock.sendall(struct.pack("!i", len(body) + 4) + body)
    (tag, msg), = _read_all(sock, until=b"R")
    assert tag == b"R" and struct.unpack("!i", msg[:4])[0] == 10, msg
    nonce = base64.b64encode(os.urandom(18)).decode()
    first = f"n=,r={nonce}"
    sock.sendall(_msg(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first) + 3)
                      + b"n,," + first.encode()))
    (_, msg), = _read_all(sock, until=b"R")
    return sock, first, msg[4:].decode()


def scram_finish(sock: socket.socket, token: str, first: str, server_first: str
                 ) -> list[tuple[bytes, bytes]]:
    """The client-final message of `scram_start`'s login, with `token` as the
    password; what the server answers to it."""
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", token.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    final = f"c=biws,r={attrs['r']}"
    signature = hmac.new(hashlib.sha256(client_key).digest(),
                         f"{first},{server_first},{final}".encode(),
                         hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    sock.sendall(_msg(b"p", final.encode() + b",p=" + proof))
    return _read_all(sock)


def _connect(pg: PgServer, token: str) -> socket.socket:
    """A raw connection, SCRAM-SHA-256 with the token as the password."""
    sock, first, server_first = scram_start(pg.port)
    msgs = scram_finish(sock, token, first, server_first)
    assert msgs[-1] == (b"Z", b"I"), msgs
    return sock


def _suspend(sock: socket.socket, portal: bytes, sql: bytes = BIG) -> list[tuple[bytes, bytes]]:
    """Inside BEGIN (portals live across Syncs): `portal` bound to `sql` and
    executed for one row."""
    return _round(sock, _parse(b"", sql) + _bind(portal, b"") + _execute(portal, 1))


def _message(msgs: list[tuple[bytes, bytes]]) -> str:
    return next(_fields(body)["M"] for tag, body in msgs if tag == b"E")


def test_a_connections_portals_keep_a_quarter_of_the_total_in_rows(server: PgServer) -> None:
    sock = _connect(server, "t-root")
    try:
        _simple(sock, b"BEGIN")
        assert (b"s", b"") in _suspend(sock, b"p1")
        refused = _suspend(sock, b"p2")  # two would be ~7 MB, past the connection's 4 MB
        assert _error_code(refused) == "54000", refused
        assert "max_portal_rows_bytes_total" in _message(refused), refused
        assert _error_code(_round(sock, _execute(b"p2", 1))) == "34000"  # it was closed
        # A catalog query's rows count by their Arrow bytes too.
        refused = _suspend(sock, b"c", CATALOG)
        assert _error_code(refused) == "54000" and "rows not yet sent" in _message(refused)
        # An Execute without a row limit keeps nothing: it runs.
        whole = _round(sock, _bind(b"w", b"") + _execute(b"w", 0))
        assert [t for t, _ in whole].count(b"D") == 3000, whole[-3:]
        # Reading p1 to its end gives its bytes back; so does closing one.
        rest = _round(sock, _execute(b"p1", 0))
        assert [t for t, _ in rest].count(b"D") == 2999, rest[-3:]
        for n in range(5):  # given back each time: never refused
            assert (b"s", b"") in _suspend(sock, b"c%d" % n)
            assert _error_code(_round(sock, _msg(b"C", b"Pc%d\x00" % n))) is None
        _simple(sock, b"COMMIT")  # COMMIT closes them: given back
        for _ in range(5):  # outside BEGIN each Sync ends the portal
            msgs = _round(sock, _parse(b"", BIG) + _bind(b"q", b"") + _execute(b"q", 1))
            assert _error_code(msgs) is None and (b"s", b"") in msgs, msgs
    finally:
        sock.close()


def test_a_described_answer_past_the_bound_runs_again_at_execute(server: PgServer) -> None:
    """Describe(portal) runs a query for its columns and keeps its rows for
    the Execute (libpq's Bind, Describe, Execute, Sync): one past the bound
    is forgotten and run again, not refused. With a row limit it is 54000."""
    sock = _connect(server, "t-root")
    try:
        msgs = _round(sock, _parse(b"", HUGE) + _bind(b"", b"") + _msg(b"D", b"P\x00")
                      + _execute(b"", 0))
        assert _error_code(msgs) is None, msgs
        assert [t for t, _ in msgs].count(b"T") == 1
        assert [t for t, _ in msgs].count(b"D") == 6000 and (b"C", b"SELECT 6000\x00") in msgs
        _simple(sock, b"BEGIN")
        msgs = _round(sock, _parse(b"", HUGE) + _bind(b"h", b"") + _msg(b"D", b"Ph\x00"))
        assert _error_code(msgs) is None and (b"T" in [t for t, _ in msgs]), msgs
        refused = _round(sock, _execute(b"h", 10))
        assert _error_code(refused) == "54000", refused
        _simple(sock, b"COMMIT")
    finally:
        sock.close()


def test_a_role_user_keeps_a_quarter_and_others_keep_theirs(server: PgServer) -> None:
    socks: list[socket.socket] = []

    def opened(token: str) -> socket.socket:
        socks.append(_connect(server, token))
        _simple(socks[-1], b"BEGIN")
        return socks[-1]

    try:
        eve = opened("t-eve")
        assert (b"s", b"") in _suspend(eve, b"e")
        refused = _suspend(opened("t-eve"), b"e")  # her second connection: past her share
        assert _error_code(refused) == "53200", refused
        assert "user 'eve'" in _message(refused) and "share (4000000)" in _message(refused)
        assert (b"s", b"") in _suspend(opened("t-bob"), b"b")  # bob keeps his
        for _ in range(2):  # admins: only the server's total holds them
            assert (b"s", b"") in _suspend(opened("t-root"), b"r")
        refused = _suspend(opened("t-root"), b"r")  # ~18 MB: past the server's 16 MB
        assert _error_code(refused) == "53200", refused
        assert "the server's connections keep" in _message(refused), refused
        assert "max_portal_rows_bytes_total (16000000)" in _message(refused)
        eve.close()  # what her portal kept is the server's again
        for _ in range(200):  # (once the server has seen her leave)
            if _error_code(_suspend(socks[-1], b"r")) is None:
                break
        else:
            pytest.fail("the closed connection's rows were never given back")
    finally:
        for sock in socks:
            sock.close()


def test_rows_given_back_return_to_zero_and_ask_for_a_purge(
        monkeypatch: pytest.MonkeyPatch) -> None:
    purged: list[bool] = []
    monkeypatch.setattr(kept.allocator, "purge", lambda: purged.append(True))
    budget = kept.RowsBudget(4 * kept.PURGE_BYTES * 4)
    rows = kept.Rows(budget, "eve")
    portals: kept.Portals[object] = kept.Portals(kept.Tally(10**6), lambda _: 0, rows)

    class Portal:
        def __init__(self, reply: Reply) -> None:
            self.reply: Reply | None = reply

    # Two of them given back pass PURGE_BYTES: one purge.
    big = Reply("SELECT 2", [("v", 25)], [["x"], ["y"]], nbytes=kept.PURGE_BYTES // 2)

    async def run() -> None:
        for name in ("a", "b"):
            portals[name] = Portal(big)
            assert portals.keep(name, portals[name], 1) is big
        assert budget.used == budget.by["eve"] == rows.used == 2 * kept.rows_size(big)
        portals.sent("a")  # read to its end
        del portals["b"]  # closed
        assert budget.used == rows.used == 0 and not budget.by
        for _ in range(1000):  # the purge runs once the message is done, on a thread
            if purged:
                break
            await asyncio.sleep(0.01)
        assert purged == [True]
        portals["c"] = Portal(big)
        portals.keep("c", portals["c"], -1)
        portals.clear()  # Sync, COMMIT, the connection's end
        assert budget.used == 0 and not portals.held

    asyncio.run(run())
