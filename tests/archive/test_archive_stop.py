"""The server stopping while archiving is in the middle of a cycle."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from server import faults
from tests.helpers import Gate, ok, state


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
