"""A CancelRequest for a write: either nothing is written and the client is
told 57014, or the write has committed and the client is told it completed.
The interrupt reached only a SELECT's DuckDB query: an INSERT … SELECT, or an
UPDATE / DELETE with a slow WHERE, was abandoned after CANCEL_GRACE (57014)
while it ran on, and its rows landed seconds later. A cancel that comes while
a pipeline (up to Sync) or a simple Query is being worked through stops the
rest of it: one that came between two of its statements was dropped, and a
driver's executemany told 'cancelled' wrote its whole batch."""

from __future__ import annotations

import socket
import struct
import threading
import time

import psycopg
import pytest

from catalog.errors import Cancelled
from server.pgwire.cancelling import CANCEL_GRACE
from server.session import Interrupt
from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _PENDING, _fields, _msg, _read_all, _startup

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

# Each runs for many seconds uncancelled (a billion-row scan), then writes.
SLOW = {
    "insert": "INSERT INTO cw.t (id, v) SELECT range + 1000, 'cancelled' "
              "FROM range(0, 2000000000) WHERE range % 1000000000 = 0",
    "update": "UPDATE cw.t SET v = 'cancelled' WHERE id < 5 AND "
              "(SELECT count(*) FROM range(0, 2000000000) WHERE range % 7 = 0) > 0",
    "delete": "DELETE FROM cw.t WHERE id < 5 AND "
              "(SELECT count(*) FROM range(0, 2000000000) WHERE range % 7 = 0) > 0",
}


@pytest.fixture(scope="module")
def table(pg: PgServer) -> PgServer:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE cw")
        conn.execute("CREATE TABLE cw.t (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO cw.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    return pg


@pytest.mark.parametrize("kind", list(SLOW))
def test_a_cancelled_write_stops_at_once_and_writes_nothing(table: PgServer, kind: str) -> None:
    with psycopg.connect(table.dsn(), autocommit=True) as conn:
        threading.Timer(0.5, conn.cancel).start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(SLOW[kind])
        # Its DuckDB query was interrupted: not abandoned after the grace.
        assert time.monotonic() - started < CANCEL_GRACE
        time.sleep(3)  # an abandoned statement thread wrote in this time
        rows = conn.execute("SELECT id, v FROM cw.t ORDER BY id").fetchall()
        assert rows == [(1, "a"), (2, "b"), (3, "c")]


def test_an_interrupt_fired_before_the_commit_refuses_it() -> None:
    """A cancel between the query phase and the commit: CANCELLED, nothing written."""
    fired = Interrupt()
    assert fired.fire()
    assert not fired.commit()
    committed = Interrupt()
    assert committed.commit()
    assert not committed.fire()  # too late: it completes, and the client is told so
    assert not committed.fired


def test_an_interrupt_fired_before_the_query_starts_refuses_it() -> None:
    """DuckDB drops an interrupt that comes before its query runs: a cancel
    that came while a statement waited for its thread or was being started
    let the query run on for minutes."""
    fired = Interrupt()
    assert fired.fire()
    interrupted: list[bool] = []
    with pytest.raises(Cancelled, match="at the client's request"):
        fired.target(lambda: interrupted.append(True))
    assert not interrupted  # the query is never started
    fired.target(None)  # the engine's hand-back after it still works


# 30 MB of rows: their sending waits on a client that reads none of them.
BIG = b"SELECT range, repeat('x', 10000) FROM range(3000)"


def _connect_keyed(pg: PgServer) -> tuple[socket.socket, bytes]:
    """A raw connection that reads little at a time, and its cancel key."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", pg.port))
    _PENDING.pop(sock.fileno(), None)
    sock.sendall(_startup())
    msgs = _read_all(sock)
    assert msgs[-1] == (b"Z", b"I"), msgs
    return sock, dict(msgs)[b"K"]


def _cancel(pg: PgServer, key: bytes) -> None:
    """A CancelRequest, returned once the server has taken it (it closes)."""
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as other:
        other.sendall(struct.pack("!ii", 16, 80877102) + key)
        assert other.recv(10) == b""


def _cancel_while_busy(pg: PgServer, sock: socket.socket, key: bytes, sent: bytes
                       ) -> list[tuple[bytes, bytes]]:
    """Send `sent`; once the big SELECT's rows come (it has run, the rest has
    not: they wait for this client to read them), cancel; then read to
    ReadyForQuery."""
    sock.sendall(sent)
    got = _PENDING.pop(sock.fileno(), b"")
    while len(got) < 30_000:  # three rows
        got += sock.recv(4096)
    _PENDING[sock.fileno()] = got
    _cancel(pg, key)
    return _read_all(sock, timeout=30)


def _pipeline_table(pg: PgServer) -> psycopg.Connection:
    conn = psycopg.connect(pg.dsn(), autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS cw.p (id BIGINT PRIMARY KEY)")
    conn.execute("DELETE FROM cw.p")
    return conn


def _after_big(msgs: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The tags after the big SELECT's rows, which all came."""
    tags = [m[0] for m in msgs]
    assert tags.count(b"D") == 3000, tags[:8]
    assert next(body for tag, body in msgs if tag == b"C") == b"SELECT 3000\x00"
    return [t for t in tags if t not in (b"1", b"2", b"T", b"D")]


def test_a_cancel_between_pipelined_statements_stops_the_rest_up_to_sync(table: PgServer
                                                                           ) -> None:
    with _pipeline_table(table) as conn:
        sock, key = _connect_keyed(table)
        insert = (_msg(b"B", b"\x00ins\x00" + struct.pack("!hhh", 0, 0, 0))
                  + _msg(b"E", b"\x00\x00\x00\x00\x00"))
        msgs = _cancel_while_busy(table, sock, key, (
            _msg(b"P", b"ins\x00INSERT INTO cw.p VALUES (1)\x00\x00\x00")
            + _msg(b"P", b"\x00" + BIG + b"\x00\x00\x00")
            + _msg(b"B", b"\x00\x00" + struct.pack("!hhh", 0, 0, 0))
            + _msg(b"E", b"\x00\x00\x00\x00\x00")
            + insert + insert + _msg(b"S")))
        # The SELECT was sending its rows when the cancel came: the INSERTs never start.
        assert _after_big(msgs) == [b"C", b"E", b"Z"]
        assert _fields(dict(msgs)[b"E"])["C"] == "57014"
        assert conn.execute("SELECT count(*) FROM cw.p").fetchone() == (0,)
        # The cancel is spent at ReadyForQuery: the next pipeline runs.
        sock.sendall(insert + _msg(b"S"))
        assert [m[0] for m in _read_all(sock)] == [b"2", b"C", b"Z"]
        assert conn.execute("SELECT count(*) FROM cw.p").fetchone() == (1,)
        sock.close()


def test_a_cancel_between_statements_of_a_query_ends_it(table: PgServer) -> None:
    with _pipeline_table(table) as conn:
        sock, key = _connect_keyed(table)
        msgs = _cancel_while_busy(table, sock, key, _msg(
            b"Q", BIG + b"; INSERT INTO cw.p VALUES (1); INSERT INTO cw.p VALUES (2)\x00"))
        assert _after_big(msgs) == [b"C", b"E", b"Z"]
        assert _fields(dict(msgs)[b"E"])["C"] == "57014"
        assert conn.execute("SELECT count(*) FROM cw.p").fetchone() == (0,)
        sock.close()


def test_a_cancel_while_idle_changes_nothing(table: PgServer) -> None:
    """As in PostgreSQL: a cancel that comes after ReadyForQuery stops nothing later."""
    with _pipeline_table(table) as conn:
        sock, key = _connect_keyed(table)
        sock.sendall(_msg(b"Q", b"SELECT 1\x00"))
        assert [m[0] for m in _read_all(sock)] == [b"T", b"D", b"C", b"Z"]
        _cancel(table, key)
        sock.sendall(_msg(b"Q", b"INSERT INTO cw.p VALUES (1); INSERT INTO cw.p VALUES (2)\x00"))
        assert [m[0] for m in _read_all(sock)] == [b"C", b"C", b"Z"]
        assert conn.execute("SELECT count(*) FROM cw.p").fetchone() == (2,)
        sock.close()


def test_a_cancelled_executemany_stops_its_batch(table: PgServer) -> None:
    """psycopg's executemany is one pipeline: cancelled while it ran, it
    often ran all 3,000 INSERTs (seconds) and reported no error. The cancel
    is sent once the first rows are in (a cancel at a fixed 0.3 s could come,
    on a loaded machine, before the batch began: one for an idle connection,
    rightly ignored)."""
    with _pipeline_table(table) as conn, psycopg.connect(table.dsn(), autocommit=True) as other:
        def cancel_once_running() -> None:
            with psycopg.connect(table.dsn(), autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    row = watcher.execute("SELECT count(*) FROM cw.p").fetchone()
                    if row is not None and row[0] > 0:
                        break
                    time.sleep(0.01)
            other.cancel()

        threading.Thread(target=cancel_once_running, daemon=True).start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            other.cursor().executemany("INSERT INTO cw.p VALUES (%s)", [(i,) for i in range(3000)])
        count = conn.execute("SELECT count(*) FROM cw.p").fetchone()
        assert count is not None and count[0] < 3000


def test_a_cancel_while_waiting_for_the_client_mid_pipeline_changes_nothing(
        table: PgServer) -> None:
    """A statement answered, then Flush (no Sync): the server waits for the
    client's next message. A cancel then was held and failed the client's
    next Execute with 57014; PostgreSQL ignores a cancel while it reads."""
    sock, key = _connect_keyed(table)
    parse = _msg(b"P", b"st\x00SELECT 42\x00\x00\x00")
    bind_execute = (_msg(b"B", b"\x00st\x00\x00\x00\x00\x00\x00\x00")
                    + _msg(b"E", b"\x00\x00\x00\x00\x00"))
    sock.sendall(parse + bind_execute + _msg(b"H"))
    got: list[bytes] = []
    while b"C" not in got:
        got += [m[0] for m in _read_all(sock)]
    _cancel(table, key)
    time.sleep(0.2)  # the cancel is taken while the server waits for this connection
    sock.sendall(bind_execute + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"2", b"D", b"C", b"Z"], msgs
    sock.close()
