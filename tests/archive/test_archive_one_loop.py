"""One archiver per archived namespace: START ARCHIVING's base and the loop
after it share one lock with STOP ARCHIVING, and a loop whose archive was
stopped ends without writing anything."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from server import archiving, faults
from tests.archive.test_archiving import wait_shipped
from tests.helpers import Gate, ok, rows, state


@pytest.fixture(autouse=True)
def no_faults() -> Any:
    yield
    faults.clear()


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_a_stop_during_a_detached_base_leaves_no_second_loop(client: Any) -> None:
    """START ARCHIVING (detached), STOP while its base runs, START again into
    the same target: the archiver whose base START took was replaced by
    a new one with a lock of its own once the base was done, so STOP's last
    segment and that loop's shipped at once, and the loop, re-reading the
    record, shipped into the next START's archive and wrote `running` back
    after STOP: VERIFY ARCHIVE found overlapping segments, RESTORE as_of
    refused them, a stopped archive came back running, the next START was
    ALREADY_EXISTS. Now STOP waits for the base and ends its loop."""
    cairn = state(client)
    svc = archiving.service(cairn)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    gate = Gate(cairn)
    faults.register("backup.before_manifest", gate)
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' "
                     "WITH (interval = '100ms', detached = true)")
    await gate.reach()
    stop = asyncio.create_task(ok(client, "STOP ARCHIVING DATABASE app"))
    await asyncio.sleep(0.3)  # STOP waits for the base
    assert not stop.done()
    gate.opened.set()
    await stop
    shown = (await rows(client, "SHOW ARCHIVES"))[0]
    assert shown["status"] == "stopped", shown

    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await asyncio.sleep(0.05)
    when = iso_now()
    await asyncio.sleep(0.05)
    await wait_shipped(client)
    await asyncio.sleep(0.5)  # a second loop, had one been left, ships meanwhile
    await ok(client, "STOP ARCHIVING DATABASE app")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # stays stopped: no loop writes `running` back
        shown = (await rows(client, "SHOW ARCHIVES"))[0]
        assert shown["status"] == "stopped", shown
        await asyncio.sleep(0.1)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{when}')")
    assert [r["id"] for r in await rows(client, "SELECT id FROM r.t")] == [1]
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert "app" not in svc.archivers


async def test_a_loop_of_a_stopped_archive_writes_nothing(client: Any) -> None:
    """A loop that wakes after its archive was stopped and another started
    (a different archive_id) ends without a cycle: the new archive's record
    and segments are the new archiver's alone."""
    cairn = state(client)
    svc = archiving.service(cairn)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await wait_shipped(client)
    old = svc.archivers["app"]
    await ok(client, "STOP ARCHIVING DATABASE app")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    new = svc.archivers["app"]
    assert new is not old and old.task is not None and old.task.done()
    # The new archive's first segment (at its first cycle, empty or not) before
    # `before`: shipped during the stale loop's run, it was counted as the stale's.
    await wait_shipped(client)
    stale = archiving.Archiver(svc, "app", old.archive_id)  # a loop of the stopped archive
    before = (await rows(client, "SHOW ARCHIVES"))[0]
    await asyncio.wait_for(stale.run(), 5.0)  # ends at once, having shipped nothing
    assert svc.archivers["app"] is new
    after = (await rows(client, "SHOW ARCHIVES"))[0]
    assert after["segments"] == before["segments"], (before, after)
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
