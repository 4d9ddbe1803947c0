"""Replies a client does not read: the server stops reading it once they pass
the transport's high-water mark, and one that leaves them unread for
`[server] send_timeout_seconds` is disconnected and its answer freed.
Every reply but a statement's rows went out without waiting: 25-byte
Bind+Execute pairs of a prepared `SET application_name = '<1 MB>'` grew the
server by 800 MB, and an unread 50 MB answer was held for good."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from pathlib import Path

from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_hostile import _other_client_answers, _rss
from tests.pgwire.test_protocol import _connect, _msg, _read_all

SEND_TIMEOUT = 2


def _bind_execute() -> bytes:
    return (_msg(b"B", b"\x00\x00" + struct.pack("!hhh", 0, 0, 0))
            + _msg(b"E", b"\x00" + struct.pack("!i", 0)))


def test_replies_not_read_stop_the_reading(pg: PgServer) -> None:
    sock = _connect(pg)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(_msg(b"P", b"\x00SET application_name = '" + b"x" * 60_000 + b"'\x00\x00\x00")
                 + _msg(b"S"))
    assert [m[0] for m in _read_all(sock)] == [b"1", b"Z"]
    warm: list[object] = []
    _other_client_answers(pg, warm)
    before = _rss(pg)
    sock.settimeout(5)
    with contextlib.suppress(OSError):  # the server stops reading: sendall times out
        sock.sendall(_bind_execute() * 3000)  # 75 KB: 180 MB of ParameterStatus
    time.sleep(1)
    out: list[object] = []
    _other_client_answers(pg, out)
    assert out == [(42,)]
    grown = _rss(pg) - before
    assert grown < 40 * 1024 * 1024, grown
    sock.close()


def test_a_client_that_reads_nothing_is_disconnected(tmp_path: Path) -> None:
    for server in _start(tmp_path, f"[server]\nsend_timeout_seconds = {SEND_TIMEOUT}\n"):
        sock = _connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(_msg(b"Q", b"SELECT range AS id, repeat('x', 500) AS pad "
                                b"FROM range(100000)\x00"))
        time.sleep(SEND_TIMEOUT + 4)
        out: list[object] = []
        _other_client_answers(server, out)
        assert out == [(42,)]
        server.proc.stop()
        log = server.proc.log()
        assert "(send_timeout_seconds): connection closed" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        sock.close()
