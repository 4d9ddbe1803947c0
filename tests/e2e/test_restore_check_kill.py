"""A RESTORE's check of its fetched files (storage/backup/fetched_checks.py,
in a job process) meets KILL JOB and PAUSE JOB between two files: a restore
of thousands of files checks for minutes, and a KILL waited KILL_GRACE (5 s)
for the job process and then killed it, a PAUSE waited for the whole check."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server import faults
from storage import jobproc
from tests.helpers import Gate, job_row, ok, rows, state


async def _status(client: Any, job_id: str, want: str) -> dict[str, Any]:
    for _ in range(3000):  # generous: a loaded machine
        row = await job_row(client, job_id)
        if row["status"] == want:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never {want}: {row}")


async def test_pause_and_kill_reach_a_restores_file_check(
        client: Any, caplog: pytest.LogCaptureFixture) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    for i in range(3):
        await ok(client, f"INSERT INTO app.t VALUES ({i}, 'v{i}'); FLUSH TABLE app.t")
    await ok(client, "BACKUP DATABASE app TO 'b'")
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    seen: list[int] = []

    def check_file(info: dict[str, Any]) -> None:
        seen.append(info["index"])
        gate(info)

    faults.register("restore.check_file", check_file)
    try:
        (started,) = await rows(client, "RESTORE DATABASE app FROM 'b' AS copy "
                                        "WITH (detached = true)")
        job_id = started["job_id"]
        await asyncio.get_running_loop().run_in_executor(None, gate.reached.wait, 60)
        assert gate.reached.is_set(), "the check never reached its second file"
        assert len(jobproc.busy()) == 1  # in a job process
        await ok(client, f"PAUSE JOB '{job_id}'")
        gate.opened.set()
        await _status(client, job_id, "paused")  # before the second file is read
        await asyncio.sleep(0.2)
        assert seen == [0, 1], seen  # nothing read while paused
        await ok(client, f"KILL JOB '{job_id}'")
        row = await _status(client, job_id, "cancelled")
        # It stopped at the KILL: not killed after KILL_GRACE ("its job process was stopped").
        assert "process" not in (row["error_message"] or ""), row
        assert seen == [0, 1], seen
        assert "did not stop" not in caplog.text
    finally:
        faults.clear()
    assert await rows(client, "SELECT count(*) AS n FROM system.namespaces "
                              "WHERE namespace = 'copy'") == [{"n": 0}]
    (r,) = await rows(client, "RESTORE DATABASE app FROM 'b' AS copy")
    assert r["status"] == "completed", r
