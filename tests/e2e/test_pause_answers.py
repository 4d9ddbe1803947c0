"""PAUSE JOB and RESUME JOB answer what happened. A backup that ended while
PAUSE JOB waited for it to pause (its work past its last check) answered 200
`status: completed`, and a RESUME a KILL beat answered 200 `status:
cancelled`, both as if they had worked. Now both are INVALID_ARGUMENT saying
the job ended first, as KILL JOB answers a job that ends before it can stop it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.jobcontext import JobContext
from tests.helpers import Gate, fill, job_row, rows, sql, state, wait_job


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


async def pause_requested(client: Any, job_id: str) -> None:
    deadline = time.monotonic() + 60  # seconds under load
    while not state(client).jobs.pause_requested(job_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


async def test_a_pause_the_job_ends_before_is_not_a_success(client: Any) -> None:
    await fill(client, files=2)
    gate = Gate(state(client))  # past the backup's last check: it completes once opened
    faults.register("backup.before_record", gate)
    (job,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = job["job_id"]
    await gate.reach()
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    await pause_requested(client, job_id)
    gate.opened.set()
    status, body = await pausing
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert body["error"]["message"] == f"Job '{job_id}' completed before it could be paused"
    done = await wait_job(client, job_id)
    assert done["status"] == "completed", done
    assert [b["backup_id"] for b in await rows(client, "SHOW BACKUPS")] == [done["backup_id"]]


async def test_a_resume_a_kill_beats_is_not_a_success(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await fill(client, files=3)
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    (job,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = job["job_id"]
    await gate.reach()
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    await pause_requested(client, job_id)
    gate.opened.set()
    status, body = await pausing
    assert body["results"][0]["rows"] == [{"job_id": job_id, "status": "paused"}], body
    resume = JobContext.ask_resume

    def killed_first(ctx: JobContext) -> bool:  # a KILL lands as the RESUME does
        ctx.cancel()
        return resume(ctx)

    monkeypatch.setattr(JobContext, "ask_resume", killed_first)
    status, body = await sql(client, f"RESUME JOB '{job_id}'")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert body["error"]["message"] == f"Job '{job_id}' cancelled before it could be resumed"
    deadline = time.monotonic() + 60  # its row is written once its clean-up is done
    while (row := await job_row(client, job_id))["status"] == "paused":
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.02)
    assert row["status"] == "cancelled", row
    assert await rows(client, "SHOW BACKUPS") == []
    assert not list((tmp_path / "backups" / "nightly").rglob("manifests/*"))
