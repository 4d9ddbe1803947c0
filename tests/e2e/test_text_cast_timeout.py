"""An INSERT ... SELECT of values that are not text into a TEXT or JSON
column is written as DuckDB's CAST gives them, asked of a private DuckDB
the whole server shares (storage/spelling.py `json_column`, `json_strings`,
`times_of`). That was one query a column, under the private DuckDB's lock,
with no timeout and no cancel: a million values ran on past the statement's
timeout, and every other statement's cast waited for the lock as long. Now
the values are cast in chunks, each query interrupted past the timeout or at
a cancel, the lock held a chunk at a time (as the DECIMAL texts' cast,
tests/e2e/test_decimal_cast_timeout.py).

The cast is made certainly slower than the timeout (`SlowDuck`: the private
DuckDB's casts of a column take PER_VALUE seconds a value, a wait DuckDB's
interrupt ends), not by the machine's speed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyarrow as pa
import pytest

from catalog.errors import Cancelled
from server.app import create_app
from server.config import Config
from storage import spelling
from tests.helpers import ok, rows, sql, state
from tests.private_duck import SlowDuck, cancel_midway

TIMEOUT = 5.0
ROWS = 200_000
PER_VALUE = 3e-4  # 60 s for ROWS values uncut; 9.8 s for a chunk of 32,768
SLOWED = ("AS VARCHAR) FROM v", "AS TIMESTAMP) FROM v")  # json_column & co.: a column's casts


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> SlowDuck:
    duck = SlowDuck(lambda q: q.endswith(SLOWED), PER_VALUE)
    monkeypatch.setattr(spelling, "_con", duck)
    return duck


@pytest.fixture
async def timed(aiohttp_client: Any, cairn_config: Config) -> Any:
    cairn_config.server.query_timeout_seconds = TIMEOUT
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT, s TEXT);"
                     "CREATE TABLE app.small (id BIGINT, s TEXT)")
    return client


async def test_a_cast_past_the_timeout_writes_nothing_and_holds_no_other_statement(
        timed: Any, slow: SlowDuck) -> None:
    started = time.monotonic()
    big = asyncio.create_task(sql(timed, "INSERT INTO app.t SELECT i, i::DOUBLE / 4 "
                                         f"FROM range({ROWS}) r(i)"))
    assert await asyncio.to_thread(slow.started.wait, 60), "the cast never started"
    # Another statement's two values, while the big cast holds the private
    # DuckDB (under a timeout of its own it is sure not to reach waiting).
    state(timed).config.server.query_timeout_seconds = 120
    other_started = time.monotonic()
    other_status, other_body = await sql(
        timed, "INSERT INTO app.small SELECT i, i::DOUBLE / 4 FROM range(2) r(i)")
    other = time.monotonic() - other_started
    assert other_status == 200, other_body
    status, body = await big
    took = time.monotonic() - started
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    assert body["error"]["message"] == f"query cancelled: it ran longer than {TIMEOUT} s"
    # Uncut, the cast alone is 60 s (a chunk of it 9.8 s); the timeout is 5 s.
    assert took < 30, took
    assert slow.cast < ROWS // 2, slow.cast
    assert other < 25, other  # it waited for the big cast: 60 s uncut
    assert await rows(timed, "SELECT count(*) AS n FROM app.t") == [{"n": 0}]
    assert await rows(timed, "SELECT s FROM app.small ORDER BY id") == [
        {"s": "0.0"}, {"s": "0.25"}]


@pytest.mark.parametrize("cast", ["json_column", "json_strings", "times_of"])
def test_a_cancel_stops_the_cast(slow: SlowDuck, cast: str) -> None:
    """A pgwire CancelRequest (the statement's Interrupt) was answered, and the
    cast ran on, holding every other statement's cast."""
    column: Any = {
        "json_column": pa.array([float(i) for i in range(ROWS)]),
        "json_strings": pa.array([str(i) for i in range(ROWS)]),
        "times_of": pa.array(list(range(ROWS)), pa.timestamp("ns")),
    }[cast]
    args = {"json_column": ("VARCHAR",), "json_strings": (), "times_of": ("TIMESTAMP",)}[cast]
    raised, took, alive = cancel_midway(lambda: getattr(spelling, cast)(column, *args),
                                        slow.started, 30,  # uncut, 60 s
                                        "the cast never started")
    assert not alive, "the cast ran on past its cancel"
    assert isinstance(raised, Cancelled), raised
    assert took < 30, took
    assert spelling.json_column(pa.array([1.5, 2.0]), "VARCHAR").to_pylist() == ["1.5", "2.0"]
