"""The server stopping while archiving is in the middle of a cycle, and a
STOP ARCHIVING that cannot ship."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from catalog import Archive
from catalog.errors import Unavailable
from server import faults
from storage.archive.changes import MAX_LSN
from tests.archive.test_archiving import wait_shipped
from tests.helpers import Gate, ok, rows, state


@pytest.fixture(autouse=True)
def no_faults() -> Any:
    yield
    faults.clear()


async def test_the_state_stays_open_until_archiving_has_stopped(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's loops are gathered, and a gather ends at its first
    cancelled loop: the state closed while archiving still let its cycle
    finish, whose next step met it closed ("cannot schedule new futures after
    shutdown", an ERROR with a traceback on Ctrl-C or SIGTERM)."""
    cairn = state(client)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    gate = Gate(cairn)
    faults.register("archive.before_segment", gate)
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await gate.reach()
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0.5)
    try:
        assert await cairn.run(lambda: "open") == "open"  # not closed under the cycle
    finally:
        gate.opened.set()
        await closing
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_stop_that_cannot_ship_keeps_what_it_did_not_ship(client: Any) -> None:
    """STOP ARCHIVING whose last segment cannot be written (the target refuses
    it): archiving stops, last_error says so, and the change log keeps the
    changes not shipped. Before, it trimmed them all the same: a change
    committed before STOP was neither in the target nor anywhere to ship it from."""
    cairn = state(client)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '1s')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)

    def refuse(info: dict[str, Any]) -> None:
        raise Unavailable("the target does not answer")

    faults.register("archive.before_segment", refuse)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    shown = (await rows(client, "STOP ARCHIVING DATABASE app"))[0]
    assert shown["status"] == "stopped", shown
    assert "stopped before every change was shipped" in shown["last_error"], shown
    rec = await cairn.run(cairn.catalog.get, Archive, "app")
    left = await cairn.run(cairn.engine.changes.read, "app", rec.shipped_lsn, MAX_LSN)
    assert [c.kind for c in left] == ["rows"], left
    faults.clear()
    await ok(client, "START ARCHIVING DATABASE app TO 'arch2' WITH (interval = '100ms')")
    shown = await wait_shipped(client)  # the new base holds row 2; nothing is left behind
    assert shown["lag_ms"] == 0
    assert await cairn.run(cairn.engine.changes.read, "app", 0, MAX_LSN) == []
    await ok(client, "STOP ARCHIVING DATABASE app")
