"""STOP ARCHIVING waits for the base backup of a START ARCHIVING (detached)
under way; a paused base has no end of its own, and the STOP waited as long
as the pause lasted (for ever, if no one resumed it). Now STOP ARCHIVING is
INVALID_ARGUMENT at once while that base is paused, naming its job and telling
to RESUME or KILL it; one waiting already when the base pauses is refused then.

The base is paused exactly: a `Gate` parks it at a fault point, PAUSE JOB is
sent, and the gate opens once the runner has the request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from server import archiving, faults
from tests.helpers import Gate, err, fill, job_row, ok, rows, sql, state, wait_job


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


async def until(what: Any) -> None:
    deadline = time.monotonic() + 60  # seconds under load
    while not what():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


async def start_parked(client: Any) -> tuple[Gate, str]:
    """START ARCHIVING (detached) with its base parked at its second object."""
    await fill(client, files=3)
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    (job,) = await rows(client, "START ARCHIVING DATABASE app TO 'arch' "
                                "WITH (interval = '100ms', detached = true)")
    job_id = str(job["job_id"])
    assert (await gate.reach())["job_id"] == job_id
    return gate, job_id


async def pause(client: Any, gate: Gate, job_id: str) -> None:
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    await until(lambda: state(client).jobs.pause_requested(job_id))
    gate.opened.set()
    status, body = await pausing
    assert status == 200, body
    assert body["results"][0]["rows"] == [{"job_id": job_id, "status": "paused"}]


def refusal(job_id: str) -> str:
    return (f"the base backup of archiving namespace 'app' (job '{job_id}') is paused: "
            f"RESUME JOB '{job_id}' (STOP ARCHIVING then waits for it to finish) or "
            f"KILL JOB '{job_id}' first")


async def test_a_stop_waiting_for_a_base_that_pauses_is_refused(client: Any) -> None:
    gate, job_id = await start_parked(client)
    arch = archiving.service(state(client)).archivers["app"]
    stop = asyncio.create_task(sql(client, "STOP ARCHIVING DATABASE app"))
    await until(arch.wake.is_set)  # STOP is waiting for the base (its loop is not started)
    await pause(client, gate, job_id)
    # Before, this waited for as long as the base stayed paused.
    status, body = await asyncio.wait_for(stop, 60)
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert body["error"]["message"] == refusal(job_id)
    assert (await job_row(client, job_id))["status"] == "paused"
    await ok(client, f"RESUME JOB '{job_id}'")
    assert (await wait_job(client, job_id, timeout=60))["status"] == "completed"
    shown = (await rows(client, "STOP ARCHIVING DATABASE app"))[0]
    assert shown["status"] == "stopped", shown
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report


async def test_a_stop_while_the_base_is_paused_is_refused_at_once(client: Any) -> None:
    gate, job_id = await start_parked(client)
    await pause(client, gate, job_id)
    status, body = await asyncio.wait_for(sql(client, "STOP ARCHIVING DATABASE app"), 60)
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert body["error"]["message"] == refusal(job_id)
    # KILL JOB of the base: nothing is archived, as for a base that fails.
    assert await rows(client, f"KILL JOB '{job_id}'") == [{"job_id": job_id,
                                                          "status": "cancelled"}]
    await err(client, "STOP ARCHIVING DATABASE app", "NOT_FOUND")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    shown = (await rows(client, "STOP ARCHIVING DATABASE app"))[0]
    assert shown["status"] == "stopped", shown
