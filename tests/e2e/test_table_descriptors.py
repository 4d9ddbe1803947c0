"""What a listener admits beside the catalog's descriptors (server/limits.py),
and idle connections that cannot take the descriptors a query or a BACKUP
needs. Until 2026-12-06 each table's RocksDB column family, created while the
server ran, kept a descriptor open, so the connections admitted shrank as
tables were created; every table's buffer is now in one family
(storage/bufstore.py), and tables take none. A real `cairn serve` under a low
hard open-files limit."""

from __future__ import annotations

import http.client
import json
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


def _server(tmp_path: Path, nofile: int, pg: bool = False) -> ServerProcess:
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "b"}"]\n')
    proc = ServerProcess(tmp_path / "data", config=config,
                         extra=["--pg-port", str(_free_port())] if pg else None)
    # As if the hard limit were `nofile`: a wrapper lowers both, then runs the server.
    proc.args = [proc.args[0], "-c", "import os, resource, sys; "
                 f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); "
                 "os.execv(sys.executable, sys.argv[1:])", *proc.args]
    return proc.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def many_sockets() -> Iterator[list[socket.socket]]:
    """Sockets the test opens (closed after it), with room for them here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _tables(proc: ServerProcess, first: int, count: int) -> None:
    for start in range(first, first + count, 50):
        sql = "; ".join(f"CREATE TABLE many.t{i} (k BIGINT PRIMARY KEY, v TEXT)"
                        for i in range(start, min(start + 50, first + count)))
        status, body = proc.post(sql)
        assert status == 200, body


def _held(port: int, tries: int, socks: list[socket.socket]) -> int:
    """How many of `tries` connections, opened one after the other, the
    listener holds at once: each sends a request's head asking to continue
    and keeps its body, so it stays busy (never given up for a newcomer);
    one past what the listener admits is answered 503. They stay open until
    the caller closes `socks`."""
    held = 0
    for _ in range(tries):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        socks.append(sock)
        sock.sendall(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        head = sock.recv(65536)
        assert head.startswith((b"HTTP/1.1 100", b"HTTP/1.1 503")), head[:200]
        held += head.startswith(b"HTTP/1.1 100")
    return held


def _close(socks: list[socket.socket], port: int) -> None:
    while socks:
        socks.pop().close()
    for _ in range(100):  # the server sees the closes on its next loop turns
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(POST)
            if sock.recv(65536).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)


def test_tables_take_no_connection_off_what_the_http_listener_admits(
        tmp_path: Path, many_sockets: list[socket.socket]) -> None:
    """Under a limit of 1,024 open files the listener admits what the server's
    own descriptors leave; 100 tables created (and written) take none of it
    (they took 100 while each had a column family)."""
    proc = _server(tmp_path, 1024)
    try:
        assert proc.post("CREATE NAMESPACE many")[0] == 200
        before = _held(proc.port, 400, many_sockets)
        assert before == 1024 - limits.RESERVED, before
        _close(many_sockets, proc.port)
        _tables(proc, 0, 100)
        assert proc.post("INSERT INTO many.t7 VALUES (1, 'a')")[0] == 200
        after = _held(proc.port, 400, many_sockets)
        assert after == before, (before, after)
    finally:
        proc.kill()


def _pg_refused(port: int, tries: int, socks: list[socket.socket]) -> int:
    """How many of `tries` new PostgreSQL connections are refused at once
    (FATAL 53300 too_many_connections); the others wait for their start-up."""
    opened = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(tries)]
    socks.extend(opened)
    refused = 0
    deadline = time.monotonic() + 2
    for sock in opened:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        assert data[:1] == b"E" and b"C53300\0" in data, data
        refused += 1
    return refused


def test_tables_take_no_connection_off_what_the_pgwire_listener_admits(
        tmp_path: Path, many_sockets: list[socket.socket]) -> None:
    """The PostgreSQL listener took 200 connections whatever the open-files
    limit left; it takes what the limit leaves once the server's own files
    and the HTTP listener's connections are kept (at least 16), and refuses
    the next with FATAL 53300. Tables created take none of it (20 took 20
    while each had a column family)."""
    proc = _server(tmp_path, 600, pg=True)
    try:
        port = int(proc.args[proc.args.index("--pg-port") + 1])
        assert proc.post("CREATE NAMESPACE many")[0] == 200
        before = _pg_refused(port, 100, many_sockets)
        assert before >= 20, before  # it took 200, whatever the limit left
        while many_sockets:
            many_sockets.pop().close()
        time.sleep(0.5)
        _tables(proc, 0, 20)
        after = _pg_refused(port, 100, many_sockets)
        assert after == before, (before, after)
    finally:
        proc.kill()


def test_idle_connections_beside_many_tables_leave_queries_and_backups_their_files(
        tmp_path: Path, many_sockets: list[socket.socket]) -> None:
    """The attack, small: a low limit (400), 150 tables, then 250 idle
    connections. The connections past what was admitted waited for their
    request (up to 256 of them, a descriptor each) and took the last
    descriptors: a SELECT was 500 "the data directory is damaged" and new
    connections were reset. Now those waiting are as few as the connections
    admitted: the SELECT and a BACKUP work, and a new connection takes the
    place of a silent one, never the kept-alive connection's (a flood of
    silent sockets closed the oldest idle connection first, the client's)."""
    proc = _server(tmp_path, 400)
    try:
        assert proc.post("CREATE NAMESPACE many")[0] == 200
        _tables(proc, 0, 150)
        assert proc.post("INSERT INTO many.t1 VALUES (1, 'a'); FLUSH TABLE many.t1")[0] == 200
        kept = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
        kept.request("POST", "/api/sql", BODY, {"Content-Type": "application/json"})
        assert kept.getresponse().read()
        for _ in range(250):
            many_sockets.append(socket.create_connection(("127.0.0.1", proc.port), timeout=10))
        time.sleep(0.2)
        for sql in ["SELECT count(*) AS n FROM many.t1", "BACKUP DATABASE many TO 'bk'",
                    "SELECT v FROM many.t1 WHERE k = 1"]:
            kept.request("POST", "/api/sql", json.dumps({"sql": sql}).encode(),
                         {"Content-Type": "application/json"})
            resp = kept.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 200, (sql, body)
        assert body["results"][0]["rows"] == [{"v": "a"}]
        # A newcomer takes the place of the oldest that never sent a byte (since
        # 2026-12-07; it was refused 503), never the kept-alive connection's.
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as late:
            late.sendall(POST)
            assert late.recv(65536).startswith(b"HTTP/1.1 200")
        kept.request("POST", "/api/sql", BODY, {"Content-Type": "application/json"})
        assert kept.getresponse().status == 200
        kept.close()
    finally:
        proc.kill()
    assert "Too many open files" not in proc.log()


def test_the_limits_count_the_tables() -> None:
    assert limits.connection_limit(1000, 1024, families=100) == 1024 - limits.RESERVED - 100
    assert limits.connection_limit(1000, 1024, families=800) == 16  # the floor
    assert limits.connection_limit(1000, 1 << 20, families=800) == 1000
    assert limits.pgwire_limit(1000, 1024, families=100) == limits.PGWIRE_MAX
    assert limits.pgwire_limit(1000, 600, families=30) == 600 - limits.OWN - 30 - 16
    assert limits.pgwire_limit(1000, 600, families=100) == 16  # the floor
    assert limits.pgwire_limit(1000, 0) == limits.PGWIRE_MAX  # no such limit here
