"""PAUSE JOB and RESUME JOB of one job at the same time.

A PAUSE that came while a RESUME of the paused job was on its way saw the row
still `paused` and answered `paused` without setting the pause flag the RESUME
had just cleared: the job ran on. The paused job's thread is held here in its
wait (its cancel event's `wait`), so the RESUME has cleared the flag and the
thread has not yet looked at it when the PAUSE comes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from server import faults
from server.app import CAIRN
from tests.helpers import Gate, fill, rows, sql, wait_job


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


class HeldWait(threading.Event):
    """A job's cancel event whose first `wait` parks until `go` is set;
    `again` says a later `wait` came (the job waits on, paused)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.go, self.again = threading.Event(), threading.Event(), threading.Event()
        self.calls = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.inside.set()
            assert self.go.wait(120), "the test never let the job go on"
        else:
            self.again.set()
        return super().wait(timeout)


async def waited(event: threading.Event) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, event.wait, 60.0)


async def test_a_pause_while_a_resume_is_on_its_way_keeps_the_job_paused(client: Any) -> None:
    await fill(client, files=3)
    cairn = client.server.app[CAIRN]
    gate = Gate(cairn, match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    (started,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = started["job_id"]
    await gate.reach()
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    deadline = time.monotonic() + 60  # seconds under load
    while not cairn.jobs.pause_requested(job_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    gate.opened.set()
    status, body = await pausing
    assert status == 200 and body["results"][0]["rows"][0]["status"] == "paused", body

    ctx = cairn.jobs._contexts[job_id]
    held = HeldWait()
    ctx._cancel = held  # the paused thread's next wait parks
    try:
        assert await waited(held.inside)
        resuming = asyncio.create_task(sql(client, f"RESUME JOB '{job_id}'"))
        deadline = time.monotonic() + 60
        while cairn.jobs.pause_requested(job_id):  # the RESUME has cleared the flag
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)

        assert await rows(client, f"PAUSE JOB '{job_id}'") == [
            {"job_id": job_id, "status": "paused"}]
        assert cairn.jobs.pause_requested(job_id)  # it answered paused: the job stays so
    finally:
        held.go.set()  # a failure above leaves no thread held
    assert await waited(held.again)  # the thread looked at the flag, and waits on
    assert ctx.job.status == "paused"
    status, body = await resuming
    # The PAUSE came after it: RESUME says so at once, not after its 5 s wait.
    assert status == 200 and body["results"][0]["rows"][0]["status"] == "paused", body

    (resumed,) = await rows(client, f"RESUME JOB '{job_id}'")
    assert resumed["status"] != "paused"
    assert (await wait_job(client, job_id, timeout=60))["status"] == "completed"
