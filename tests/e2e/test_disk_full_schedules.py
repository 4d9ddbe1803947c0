"""Schedules on a data directory whose disk refuses writes (a real full
tmpfs, as test_disk_full_landed.py): what `system.schedules` says agrees
with `system.jobs`, a run that cannot be recorded waits and says so, the
loop logs one line (not a trace a pass), and it all comes right by itself
once the disk has room. The server's own loop is idle: the tests pass
their own `now` to `run_due`, one pass of it, as test_schedules.py does."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server import schedules as schedules_mod
from server.schedules import run_due
from tests.e2e import test_disk_full_landed as landed
from tests.e2e.test_disk_full_landed import refuse_writes, setup, space_back
from tests.helpers import Gate, idle_schedule_loop, ok, rows, state, wait_job

data_fs = landed.data_fs  # the data directory on a small tmpfs
cairn_config = landed.cairn_config


@pytest.fixture(autouse=True)
def _own_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedules_mod, "schedule_loop", idle_schedule_loop)


async def schedule_rows(client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schedule `s` as system.schedules and as SHOW SCHEDULES say it."""
    (stored,) = await rows(client, "SELECT * FROM system.schedules")
    (shown,) = await rows(client, "SHOW SCHEDULES")
    return stored, shown


def traces(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info]


async def test_a_schedule_on_a_full_disk_says_what_its_runs_did_and_goes_on_with_room(
        client: Any, data_fs: Path, cairn_config: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """One outage, two runs. A run recorded while the disk had room ended
    while it was full: system.schedules said `queued` for good (while full)
    for a job system.jobs said had ended, and every pass failed with a trace
    (the pass's copy of the job's status could not be written). Then a run
    falls due while its job cannot be recorded: two traces a pass ("could
    not start", then "checking schedules failed"), the schedule reading its
    last run's status. Now it waits, due, saying why in one line of the log
    and in its last_status, and starts at the first pass with room."""
    caplog.set_level(logging.INFO)
    await setup(client)
    await ok(client, "CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'bk' EVERY '1h'")
    cairn = state(client)
    gate = Gate(cairn)
    faults.register("backup.snapshot_taken", gate)
    t = datetime.now(UTC) + timedelta(hours=2)
    (job,) = await run_due(cairn, t)
    await gate.reach()
    filler = await refuse_writes(client, data_fs)
    gate.opened.set()
    ended = await wait_job(client, job.job_id, timeout=60)
    for k in range(3):  # was: each pass raised, a trace each
        assert await run_due(cairn, t + timedelta(seconds=k + 1)) == []
    stored, shown = await schedule_rows(client)
    assert stored["last_job_id"] == job.job_id
    assert stored["last_status"] == shown["last_status"] == ended["status"], (stored, ended)
    assert not traces(caplog), traces(caplog)

    # the next run falls due while the disk is still full
    later = t + timedelta(hours=2)
    for k in range(3):
        assert await run_due(cairn, later + timedelta(seconds=k)) == []
    due_at = stored["next_run_at"]
    stored, shown = await schedule_rows(client)
    assert stored["next_run_at"] == due_at, stored  # still due
    assert stored["last_job_id"] == job.job_id
    for row in (stored, shown):
        status = row["last_status"]
        assert status.startswith(f"waiting: the run due at {due_at[:19]}"), row
        assert f"no space left on the data directory '{cairn_config.data_dir}'" in status, row
        assert status.endswith("; it starts once the data directory takes writes again"), row
    assert not traces(caplog), traces(caplog)
    said = [r.getMessage() for r in caplog.records if r.name == "cairn.schedules"]
    assert len(said) == 1 and said[0].startswith("schedule s: waiting: "), said

    await space_back(client, filler)
    (again,) = await run_due(cairn, later + timedelta(seconds=5))  # at the first pass
    assert (await wait_job(client, again.job_id, timeout=60))["status"] == "completed"
    await run_due(cairn, later + timedelta(seconds=6))
    stored, shown = await schedule_rows(client)
    assert stored["last_job_id"] == again.job_id
    assert stored["last_status"] == shown["last_status"] == "completed", stored
    assert datetime.fromisoformat(stored["next_run_at"]).replace(tzinfo=UTC) > later
