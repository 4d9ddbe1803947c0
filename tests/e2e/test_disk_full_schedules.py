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


async def test_a_runs_status_agrees_with_its_job_while_the_disk_is_full(
        client: Any, data_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A scheduled run recorded while the disk had room, ended while it was
    full: system.schedules said `queued` for good (while full) for a job
    system.jobs said had ended, and every pass failed with a trace (the
    pass's copy of the job's status could not be written)."""
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
    await space_back(client, filler)
    stored, _ = await schedule_rows(client)
    assert stored["last_status"] == ended["status"]
    # and the next run is started and recorded as any other
    (again,) = await run_due(cairn, t + timedelta(hours=2))
    await wait_job(client, again.job_id, timeout=60)
    await run_due(cairn, t + timedelta(hours=2, seconds=1))
    stored, shown = await schedule_rows(client)
    assert stored["last_job_id"] == again.job_id
    assert stored["last_status"] == shown["last_status"] == "completed", stored


async def test_a_run_due_on_a_full_disk_waits_saying_so_and_starts_with_room(
        client: Any, data_fs: Path, cairn_config: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """A run due while its job cannot be recorded: two traces a pass ("could
    not start", then "checking schedules failed"), the schedule reading its
    last run's status. Now it waits, due, saying why in one line of the log
    and in its last_status, and starts at the first pass with room."""
    caplog.set_level(logging.INFO)
    await setup(client)
    await ok(client, "CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'bk' EVERY '1h'")
    cairn = state(client)
    (before,) = await rows(client, "SELECT next_run_at FROM system.schedules")
    filler = await refuse_writes(client, data_fs)
    t = datetime.now(UTC) + timedelta(hours=2)
    for k in range(3):
        assert await run_due(cairn, t + timedelta(seconds=k)) == []
    stored, shown = await schedule_rows(client)
    assert stored["next_run_at"] == before["next_run_at"], stored  # still due
    assert stored["last_job_id"] is None
    for row in (stored, shown):
        status = row["last_status"]
        assert status.startswith("waiting: the run due at "), row
        assert f"no space left on the data directory '{cairn_config.data_dir}'" in status, row
        assert status.endswith("; it starts once the data directory takes writes again"), row
    assert not traces(caplog), traces(caplog)
    said = [r.getMessage() for r in caplog.records if r.name == "cairn.schedules"]
    assert len(said) == 1 and said[0].startswith("schedule s: waiting: "), said
    await space_back(client, filler)
    (job,) = await run_due(cairn, t + timedelta(seconds=5))
    assert (await wait_job(client, job.job_id, timeout=60))["status"] == "completed"
    await run_due(cairn, t + timedelta(seconds=6))
    stored, shown = await schedule_rows(client)
    assert stored["last_job_id"] == job.job_id
    assert stored["last_status"] == shown["last_status"] == "completed", stored
    assert datetime.fromisoformat(stored["next_run_at"]).replace(tzinfo=UTC) > t
