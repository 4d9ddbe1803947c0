"""KILL JOB answers what happened. A DROP BACKUP in its prune (the doomed
objects decided, deleting them: no check of the cancel there) went on and
completed, while KILL JOB answered 200 `status: running` after its wait; a
KILL racing a job's end answered 200 `status: completed`. Both read as if the
kill had worked. Now the first is 503 UNAVAILABLE saying the job is in a step
that cannot be interrupted, the second INVALID_ARGUMENT saying the job ended
before the kill could stop it (as for a job that had already ended)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server import faults, jobs
from tests.helpers import Gate, fill, job_row, ok, rows, sql, state, wait_job


async def drop_in_prune(client: Any, gate: Gate) -> tuple[asyncio.Task[Any], str, str]:
    """A DROP BACKUP parked at prune.before_delete by `gate`: its task, its job
    id, the backup it drops."""
    await fill(client, table="a", files=1)
    await ok(client, "BACKUP DATABASE app TO 'bk'")
    await fill(client, table="b", files=1)
    newest = (await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"]
    faults.register("prune.before_delete", gate)
    waiting = asyncio.create_task(sql(client, f"DROP BACKUP '{newest}'"))
    return waiting, (await gate.reach())["job_id"], newest


async def test_a_kill_of_a_job_in_a_step_it_cannot_leave_says_so(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "KILL_WAIT", 0.5)
    gate = Gate()  # deaf to the cancel: the step it stands for checks none
    waiting, job_id, newest = await drop_in_prune(client, gate)
    status, body = await sql(client, f"KILL JOB '{job_id}'")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert body["error"]["message"] == (
        f"Job '{job_id}' has not stopped 0.5 s after the kill: it is in a step that cannot be "
        "interrupted (such as a drop deleting a backup's objects); it ends by itself, "
        "cancelled at its next check or completed if that step was its last (see "
        "system.jobs)"), body
    assert (await job_row(client, job_id))["status"] == "running"
    gate.opened.set()
    status, body = await waiting
    # The drop did complete. The step after it (freeing the namespace's
    # archived changes: none here) checks the cancel: a KILL pushed to the
    # job process before that step ended stops it there, past the drop (a
    # run beside other tests met it): `failed` saying so, the backup gone.
    row = await wait_job(client, job_id)
    if status != 200:
        assert body["error"]["message"].startswith(
            f"backup '{newest}' dropped; freeing its archived changes failed: KILL JOB"), body
        assert row["status"] == "failed", row
    else:
        assert row["status"] == "completed", row
    assert not await rows(client, f"SELECT backup_id FROM system.backups "
                                  f"WHERE backup_id = '{newest}'")


async def test_a_kill_the_job_ends_before_is_not_a_success(client: Any) -> None:
    gate = Gate(state(client))  # lets the drop go on once KILL asks: it completes
    waiting, job_id, newest = await drop_in_prune(client, gate)
    status, body = await sql(client, f"KILL JOB '{job_id}'")
    assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT"), body
    assert body["error"]["message"] == (
        f"Job '{job_id}' completed before the kill could stop it"), body
    assert (await waiting)[0] == 200
    assert (await job_row(client, job_id))["status"] == "completed"
    status, body = await sql(client, f"KILL JOB '{job_id}'")
    assert body["error"] == {**body["error"], "code": "INVALID_ARGUMENT",
                             "message": f"Job '{job_id}' is completed, not running"}, body
