"""Over pgwire, an INSERT … SELECT's conversion of its rows in Python is
bounded as its DuckDB query is: by the session's statement_timeout (57014,
nothing written), and by a CancelRequest, which stops it between chunks of
rows. A cancel let it convert every row before its commit refused it, and
statement_timeout did not bound it at all (see
tests/e2e/test_insert_select_timeout.py for the server's timeout)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.pgwire.server import PgServer
from tests.e2e.test_insert_select_timeout import ROWS, Slowed
from tests.helpers import ok, rows, state
from tests.pgwire.test_cancel_committed import Raw, _query
from tests.pgwire.test_protocol import _fields

INSERT = f"INSERT INTO bx.t SELECT i + 10, i::VARCHAR FROM range({ROWS}) r(i)"


@pytest.fixture
async def bx(client: Any) -> AsyncIterator[Any]:
    """The in-process server with a PostgreSQL listener (port 0: the system's pick)."""
    await ok(client, "CREATE NAMESPACE bx; CREATE TABLE bx.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO bx.t VALUES (1, 'a')")
    pg = PgServer(state(client))
    await pg.start()
    client.pg_port = pg.port
    try:
        yield client
    finally:
        await pg.close()


def _error(msgs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    errors = [_fields(body) for tag, body in msgs if tag == b"E"]
    assert len(errors) == 1, msgs
    return errors[0]


async def test_statement_timeout_bounds_the_conversion(
        bx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slowed = Slowed(monkeypatch, state(bx).engine)  # 18 s of pauses, uncut
    raw = await Raw.open(bx.pg_port)
    try:
        raw.writer.write(_query("SET statement_timeout = '1s'"))
        assert b"E" not in [tag for tag, _ in await raw.read()]
        slowed.armed = True
        started = time.monotonic()
        raw.writer.write(_query(INSERT))
        error = _error(await raw.read())
        took = time.monotonic() - started
    finally:
        raw.close()
    assert await asyncio.to_thread(slowed.done.wait, 30)
    assert error["C"] == "57014", error
    assert "ran longer than 1.0 s" in error["M"], error
    assert slowed.calls < ROWS * 2 // 4, slowed.calls  # stopped a chunk or two in
    assert took < 12, took
    assert await rows(bx, "SELECT count(*) AS n FROM bx.t") == [{"n": 1}]


async def test_a_cancel_stops_the_conversion(bx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reached, released = threading.Event(), threading.Event()

    def hold() -> None:  # the first value: held until the test's cancel is taken
        if not reached.is_set():
            reached.set()
            released.wait(30)

    slowed = Slowed(monkeypatch, state(bx).engine, pause=hold)
    slowed.armed = True
    raw = await Raw.open(bx.pg_port)
    try:
        raw.writer.write(_query(INSERT))
        assert await asyncio.to_thread(reached.wait, 30)
        await raw.cancel(bx.pg_port)
        released.set()
        error = _error(await raw.read())
    finally:
        released.set()
        raw.close()
    assert await asyncio.to_thread(slowed.done.wait, 30)
    assert error["C"] == "57014", error
    # It stopped at the next chunk: it went on to convert all 600,000 values.
    assert slowed.calls < ROWS * 2 // 4, slowed.calls
    assert await rows(bx, "SELECT count(*) AS n FROM bx.t") == [{"n": 1}]
