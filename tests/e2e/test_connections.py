"""Connections and open files (server/limits.py): idle connections cannot take
the descriptors the server's own files need, nor hang every other client up
on a reset. A real `cairn serve`, started with the usual soft limit of 1,024."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import limits
from tests.helpers import ServerProcess

BODY = b'{"sql": "SELECT 1 AS one"}'
POST = (b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))


def _exchange(port: int, data: bytes = POST) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out or len(out.split(b"\r\n\r\n", 1)[1]) < _length(out):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "cairn.toml"
    config.write_text(f'[server]\nmax_connections = 4\n[backup]\nroots = ["{tmp_path / "b"}"]\n')
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))  # what it inherits
    try:
        proc = ServerProcess(tmp_path / "data", config=config).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield proc
    finally:
        proc.kill()


def _busy(port: int) -> socket.socket:
    """A connection whose request is running: its headers sent and its body
    awaited (told by the server's `100 Continue`), as a slow upload."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: 100\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 100"), got
    sock.sendall(b"{")
    return sock


def test_past_max_connections_a_client_is_answered_503_not_reset(capped: ServerProcess) -> None:
    assert b"HTTP/1.1 200" in _exchange(capped.port)
    busy = [_busy(capped.port) for _ in range(4)]
    try:
        out = _exchange(capped.port)
        head, body = out.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head, out
        assert b"X-Frame-Options: DENY" in head and b"nosniff" in head, head
        error = json.loads(body)["error"]
        assert error["code"] == "UNAVAILABLE" and "max_connections" in error["message"]
        # A client that sends nothing is answered too, and closed.
        with socket.create_connection(("127.0.0.1", capped.port), timeout=10) as quiet:
            assert b"503" in quiet.recv(65536)
    finally:
        busy.pop().close()
    try:
        for _ in range(50):  # the server sees the close on its next loop turn
            out = _exchange(capped.port)
            if out.startswith(b"HTTP/1.1 200"):
                break
        assert out.startswith(b"HTTP/1.1 200") and b'"one":1' in out, out
    finally:
        for sock in busy:
            sock.close()


def test_idle_connections_give_their_places_to_newer_ones(capped: ServerProcess) -> None:
    """Connections that sent nothing (no token needed) held every place for
    header_timeout_seconds each, renewed at will: every request, an admin's
    too, was answered 503. Now past the limit the oldest idle connection is
    answered 503 and closed, and the newcomer is served."""
    idle = [socket.create_connection(("127.0.0.1", capped.port), timeout=10) for _ in range(6)]
    try:
        for _ in range(3):
            out = _exchange(capped.port)
            assert out.startswith(b"HTTP/1.1 200") and b'"one":1' in out, out
        # The oldest were told why, then closed; a busy connection never is.
        said = _rest(idle[0])
        assert said.startswith(b"HTTP/1.1 503") and b"max_connections" in said, said
        busy = _busy(capped.port)
        try:
            for _ in range(3):
                assert _exchange(capped.port).startswith(b"HTTP/1.1 200")
            busy.sendall(b" " * 99)
            assert b"HTTP/1.1 400" in _rest(busy)  # its request ran to its answer
        finally:
            busy.close()
    finally:
        for sock in idle:
            sock.close()


def test_a_connection_whose_answer_went_gives_its_place_while_its_body_is_dropped(
        capped: ServerProcess) -> None:
    """A request answered before its body was read (a 401 without a token, a
    404) left aiohttp dropping the body for up to 10 s ("lingering"), the
    connection busy: max_connections of them, renewed every 10 s by a
    stranger, had every other request answered 503. Its answer sent, it is
    idle now, and gives its place to a newer connection."""
    answered = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", capped.port), timeout=10)
            sock.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                got += sock.recv(4096)
            assert got.startswith(b"HTTP/1.1 404"), got
            answered.append(sock)
        out = _exchange(capped.port)
        assert out.startswith(b"HTTP/1.1 200") and b'"one":1' in out, out
    finally:
        for sock in answered:
            sock.close()


def test_answers_never_read_do_not_hold_a_place_past_the_send_timeout(tmp_path: Path) -> None:
    """Thousands of pipelined `GET /static/console.js` whose answers are never
    read (no token needed) kept each connection busy for good, its handler
    waiting to send: at max_connections of them every other request was 503,
    still so after minutes. Now a client that takes none of its answers for
    send_timeout_seconds is disconnected."""
    config = tmp_path / "cairn.toml"
    config.write_text("[server]\nmax_connections = 4\nsend_timeout_seconds = 2\n"
                      f'[backup]\nroots = ["{tmp_path / "b"}"]\n')
    proc = ServerProcess(tmp_path / "data", config=config).start()
    stalled = []
    try:
        pipeline = b"GET /static/console.js HTTP/1.1\r\nHost: x\r\n\r\n" * 3000
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", proc.port))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.sendall(pipeline)
            sock.setblocking(True)
            sock.settimeout(30)
            assert sock.recv(16).startswith(b"HTTP/1.1 200")  # its answers have begun
            stalled.append(sock)
        deadline = time.monotonic() + 60
        out = b""
        while time.monotonic() < deadline:
            out = _exchange(proc.port)
            if out.startswith(b"HTTP/1.1 200"):
                break
        assert out.startswith(b"HTTP/1.1 200") and b'"one":1' in out, out[:300]
    finally:
        for sock in stalled:
            sock.close()
        proc.kill()


def test_what_idle_reads_of_aiohttp_is_there() -> None:
    """limits._Counted.idle reads three private fields of aiohttp's
    RequestHandler; an aiohttp that renamed them would make every connection
    that sent a byte "busy" (no failure, but no idle one gives its place)."""
    from aiohttp.web_protocol import RequestHandler

    for name in ("_request_in_progress", "_messages", "_request_count"):
        assert name in RequestHandler.__slots__, name


def _rest(sock: socket.socket) -> bytes:
    """What the server writes until it closes `sock`."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_the_open_files_limit_is_raised_to_the_hard_one(capped: ServerProcess) -> None:
    assert capped.proc is not None
    line = next(x for x in Path(f"/proc/{capped.proc.pid}/limits").read_text().splitlines()
                if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    want = limits.OPEN_FILES_MAX if hard == "unlimited" else min(int(hard), limits.OPEN_FILES_MAX)
    assert int(soft) == want > 1024


def test_the_connection_limit_leaves_descriptors_for_the_server() -> None:
    assert limits.connection_limit(1000, 1 << 20) == 1000
    assert limits.connection_limit(1000, 1024) == 1024 - limits.RESERVED
    assert limits.connection_limit(1000, 100) == 16  # a floor however low the limit
    assert limits.connection_limit(4, 100) == 4
    assert limits.connection_limit(1000, 0) == 1000  # no such limit here


def test_a_backup_runs_on_while_idle_connections_pile_up(tmp_path: Path) -> None:
    """The case that failed: a hard limit of 1,024 open files, a throttled
    BACKUP running, and a client opening 1,100 idle connections. The BACKUP
    failed with "Too many open files"; now the connections past what the
    limit leaves are answered 503 (the oldest idle ones, for newer ones) and
    the BACKUP completes, and verifies."""
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "b"}"]\n'
                      "throttle_bytes_per_second = 2000000\n")
    proc = ServerProcess(tmp_path / "data", config=config)
    # As if the hard limit were 1,024: a wrapper lowers both, then runs the server.
    proc.args = [proc.args[0], "-c", "import os, resource, sys; "
                 "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
                 "os.execv(sys.executable, sys.argv[1:])", *proc.args]
    proc.start()
    idle: list[socket.socket] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # ours: 1,100+
    try:
        assert proc.post("CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, "
                         "v TEXT)")[0] == 200
        for k in range(4):
            rows = ", ".join(f"({k * 2000 + i}, '{os.urandom(400).hex()}')" for i in range(2000))
            assert proc.post(f"INSERT INTO app.t VALUES {rows}; FLUSH TABLE app.t")[0] == 200
        status, body = proc.post("BACKUP DATABASE app TO 'bk' WITH (detached = true)")
        job = body["results"][0]["rows"][0]["job_id"]
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", proc.port), timeout=10))
        # Past the limit the oldest idle connections give their places (server/limits.py).
        served = _exchange(proc.port)
        assert served.startswith(b"HTTP/1.1 200"), served[:200]
        while idle:
            idle.pop().close()
        deadline = time.monotonic() + 60
        row: dict[str, object] = {}
        while time.monotonic() < deadline:
            status, body = proc.post(f"SHOW JOB '{job}'")
            if status == 503:  # the closes above not yet seen by the server
                time.sleep(0.1)
                continue
            assert status == 200 and body["results"][0]["rows"], (status, body)
            row = body["results"][0]["rows"][0]
            if row["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert row["status"] == "completed", row
        status, body = proc.post(f"VERIFY BACKUP '{row['backup_id']}' IN 'bk'")
        assert body["results"][0]["rows"][0]["is_valid"] is True, body
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        proc.kill()


def test_a_connection_answered_417_by_aiohttp_gives_its_place(capped: ServerProcess) -> None:
    """`Expect: foo` on a route without an expect handler of ours (a 404's, no
    token needed) is refused 417 by aiohttp before the app's middlewares run:
    the answer was never counted, the connection kept alive never idle.
    max_connections of them, renewed every header_timeout_seconds, had every
    newcomer, an admin's too, answered 503."""
    answered = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", capped.port), timeout=10)
            sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = sock.recv(4096)
                assert chunk, got
                got += chunk
            assert got.startswith(b"HTTP/1.1 417"), got
            answered.append(sock)
        out = _exchange(capped.port)
        assert out.startswith(b"HTTP/1.1 200") and b'"one":1' in out, out
    finally:
        for sock in answered:
            sock.close()
