"""A statement's Python work before its DECIMAL cast (picking out the texts
DuckDB's CAST reads by rules of its own, then the unique ones) is bounded by
the statement's timeout and stopped by its cancel, as the cast is: it ran
over every row with neither (~0.2 s a million rows), and only the cast's
first chunk checked. Now it goes a CHECK_CELLS values at a time, a
`stopping.check` before each.

The work is made certainly slower than the timeout (a pause every PAUSE_EVERY
values: 50 s for ROWS values uncut, 8.2 s a chunk of 32,768), not by the
machine's speed; the timeout leaves the statement's query before it (under
load, 200,000 rows took over 5 s) time to end. The statement ends at the first
check past its timeout: after a query of under 6.8 s at the second chunk's end
(65,536 values, under ROWS // 2), after a longer one at the first's; a cancel
at the first's. (At 0.6 s a pause, a chunk took 19.7 s, and each of
these tests waited that out.)"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from catalog.errors import Cancelled
from server.app import create_app
from server.config import Config
from storage import default_cells, spelling
from tests.helpers import ok, rows, sql, state
from tests.private_duck import cancel_midway

TIMEOUT = 15.0
ROWS = 200_000
PAUSE_EVERY, PAUSE = 1_000, 0.25  # 50 s for ROWS values uncut


class Slow:
    """A pause every PAUSE_EVERY calls; `started` set at the first."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()

    def tick(self) -> None:
        self.calls += 1
        self.started.set()
        if self.calls % PAUSE_EVERY == 0:
            time.sleep(PAUSE)


@pytest.fixture
async def timed(aiohttp_client: Any, cairn_config: Config) -> Any:
    cairn_config.server.query_timeout_seconds = TIMEOUT
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT, d DECIMAL(18,2))")
    return client


@pytest.fixture
def slow_picking(monkeypatch: pytest.MonkeyPatch) -> Slow:
    slow = Slow()
    reads = spelling.cast_reads

    def cast_reads(text: str) -> bool:
        slow.tick()
        return reads(text)

    monkeypatch.setattr(default_cells, "cast_reads", cast_reads)
    return slow


@pytest.mark.parametrize("statement", [
    f"INSERT INTO app.t SELECT i, i::VARCHAR || 'e0' FROM range({ROWS}) r(i)",
    "UPDATE app.t SET d = id::VARCHAR || 'e0'"])
async def test_picking_the_texts_past_the_timeout_writes_nothing(
        timed: Any, slow_picking: Slow, statement: str) -> None:
    if statement.startswith("UPDATE"):  # its rows, under no 5 s bound (a loaded machine)
        state(timed).config.server.query_timeout_seconds = 120
        await ok(timed, f"INSERT INTO app.t SELECT i, i FROM range({ROWS}) r(i)")
        state(timed).config.server.query_timeout_seconds = TIMEOUT
    before = await rows(timed, "SELECT count(*) AS n, sum(d) AS s FROM app.t")
    started = time.monotonic()
    status, body = await sql(timed, statement)
    took = time.monotonic() - started
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    assert body["error"]["message"] == f"query cancelled: it ran longer than {TIMEOUT} s"
    assert slow_picking.started.is_set()
    # Uncut, the picking alone is 50 s (a chunk of it 8.2 s); the timeout is 15 s.
    assert took < 60, took
    assert slow_picking.calls < ROWS // 2, slow_picking.calls
    assert await rows(timed, "SELECT count(*) AS n, sum(d) AS s FROM app.t") == before


class SlowText(str):
    """A text whose hash (the unique texts' dict) pauses as `Slow` does."""

    slow: Slow

    def __hash__(self) -> int:
        self.slow.tick()
        return super().__hash__()


def test_a_cancel_stops_taking_the_unique_texts() -> None:
    """A pgwire CancelRequest (the statement's Interrupt) let the unique
    texts be taken to the end before the cast's first check."""
    slow = SlowText.slow = Slow()
    texts = [SlowText(f"{i}e0") for i in range(ROWS)]
    def work() -> None:
        with spelling.decimal_casts([(18, 2, texts)]):
            pass

    raised, took, alive = cancel_midway(work, slow.started, 60,  # uncut, 50 s
                                        "the unique texts were never taken")
    assert not alive, "taking the unique texts ran on past its cancel"
    assert isinstance(raised, Cancelled), raised
    assert took < 60, took
    assert slow.calls < ROWS // 2, slow.calls
