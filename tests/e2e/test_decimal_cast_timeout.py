"""The cast of a statement's DECIMAL texts with an exponent or underscores
('123e0', '1_000': DuckDB's CAST reads them by rules of its own, asked of a
private DuckDB the whole server shares) is bounded by the statement's
timeout and stopped by its cancel, as a query is. It was one query a column,
under the private DuckDB's lock, with neither: 1,200,000 texts answered 409
after 6 s against a 2 s timeout, and an admin's one-text INSERT ... SELECT
'2e0' waited for the lock as long. Now the texts are cast in chunks, each
query interrupted past the timeout or at a cancel, the lock held a chunk at
a time.

The cast is made certainly slower than the timeout (`SlowDuck`: the private
DuckDB's casts take PER_TEXT seconds a text, a wait DuckDB's interrupt
ends), not by the machine's speed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from catalog.errors import Cancelled
from server.app import create_app
from server.config import Config
from storage import spelling
from tests.helpers import ok, rows, sql, state
from tests.private_duck import SlowDuck, cancel_midway

TIMEOUT = 5.0
ROWS = 200_000
PER_TEXT = 3e-4  # 60 s for ROWS texts uncut; 9.8 s for a chunk of 32,768


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> SlowDuck:
    duck = SlowDuck(lambda q: "TRY_CAST" in q, PER_TEXT)
    monkeypatch.setattr(spelling, "_con", duck)
    return duck


@pytest.fixture
async def timed(aiohttp_client: Any, cairn_config: Config) -> Any:
    cairn_config.server.query_timeout_seconds = TIMEOUT
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT, d DECIMAL(18,2));"
                     "CREATE TABLE app.small (id BIGINT, d DECIMAL(18,2))")
    return client


async def test_a_cast_past_the_timeout_writes_nothing_and_holds_no_other_statement(
        timed: Any, slow: SlowDuck) -> None:
    started = time.monotonic()
    big = asyncio.create_task(sql(timed, "INSERT INTO app.t SELECT i, i::VARCHAR || 'e0' "
                                         f"FROM range({ROWS}) r(i)"))
    assert await asyncio.to_thread(slow.started.wait, 60), "the cast never started"
    # Another statement's one text, while the big cast holds the private DuckDB
    # (under a timeout of its own it is sure not to reach waiting for the big one).
    state(timed).config.server.query_timeout_seconds = 120
    other_started = time.monotonic()
    other_status, other_body = await sql(timed, "INSERT INTO app.small SELECT 1, '2e0'")
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
    assert await rows(timed, "SELECT d::VARCHAR AS d FROM app.small") == [{"d": "2.00"}]


def test_a_cancel_stops_the_cast(slow: SlowDuck) -> None:
    """A pgwire CancelRequest (the statement's Interrupt) was answered, and the
    cast ran on, holding every other statement's cast."""
    def work() -> None:
        with spelling.decimal_casts([(18, 2, [f"{i}e0" for i in range(ROWS)])]):
            pass

    raised, took, alive = cancel_midway(work, slow.started, 30,  # uncut, 60 s
                                        "the cast never started")
    assert not alive, "the cast ran on past its cancel"
    assert isinstance(raised, Cancelled), raised
    assert took < 30, took
    assert spelling.decimal_cast("1e1", 4, 2) == 10  # the private DuckDB still answers
