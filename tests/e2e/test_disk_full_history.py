"""Job records on a data directory whose disk refuses writes (a real full
tmpfs, as test_disk_full_landed.py): trimming the history and retrying a
pending clean-up wait, with one line in the log, not a trace after every
job that ends or every minute, and go on once the disk has room again."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from catalog import Job
from catalog.ids import new_id
from server import recovery
from server.config import Config
from server.history import PENDING
from tests.e2e import test_disk_full_landed as landed
from tests.e2e.test_disk_full_landed import parked, setup, space_back
from tests.helpers import ok, rows, state

data_fs = landed.data_fs  # the data directory on a small tmpfs


@pytest.fixture
def cairn_config(cairn_config: Config, data_fs: Path) -> Config:
    cairn_config.storage.data_dir = str(data_fs / "data")
    cairn_config.jobs.job_process = "off"
    cairn_config.jobs.history_max_count = 2
    return cairn_config


async def trimmed(client: Any) -> None:
    """A trim of the history now (as the minute's trim_loop starts one), done."""
    jobs = state(client).jobs
    jobs.trim_soon()
    assert jobs._trimming is not None
    await asyncio.wait_for(asyncio.shield(jobs._trimming), 60)


async def test_trims_and_pending_clean_ups_on_a_full_disk_wait_saying_so_once(
        client: Any, data_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One outage. The history over its bound is trimmed after every job that
    ends and every minute: each trim logged "trimming job history failed"
    with a trace. A clean-up left pending by an earlier start (an interrupted
    DROP's sweep of a target that was not mounted then) is tried again every
    minute: a trace each time ("retrying pending clean-ups failed"), and the
    job was dropped from the pending ones before its row was refused (the row
    said pending on disk, not tried again until a restart). Now one line
    each, and both go on once the disk has room."""
    caplog.set_level(logging.INFO)
    await setup(client)
    await ok(client, "FLUSH TABLE app.t; FLUSH TABLE app.pad")
    cairn = state(client)
    uri = str(Path(cairn.config.backup.roots[0]) / "bk")
    job = Job(job_id=new_id("job"), job_type="drop_backup", status="failed", target=uri,
              error_message="interrupted by server restart",
              cleanup={"target": uri, "sweep": True, PENDING: "target not mounted"})
    cairn.catalog.put(job)  # what start-up's recovery left (recovery.clean)
    cairn.jobs.pending.add(job.job_id)
    (status, body), filler = await parked(client, "backup.before_record",
                                          "BACKUP DATABASE app TO 'bk'", data_fs)
    assert status == 200, body  # it ended while the disk was full: a trim after it
    retrying = asyncio.create_task(recovery.retry_loop(cairn.jobs, period=0.05))
    try:
        for _ in range(3):
            await trimmed(client)
        await asyncio.sleep(1)  # retries, every 0.05 s
        traces = [r.getMessage() for r in caplog.records if r.exc_info]
        assert not traces, traces
        for what in ("trimming job history", "retrying pending clean-ups"):
            said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(what)]
            assert len(said) == 1 and said[0].startswith(
                f"{what} waits until the data directory takes writes again: no space left on "
                "the data directory"), said
        assert job.job_id in cairn.jobs.pending  # still: its row is not written yet
        await space_back(client, filler)
        deadline = time.monotonic() + 60
        while cairn.jobs.pending:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        retrying.cancel()
    (row,) = await rows(client, f"SELECT error_message FROM system.jobs "
                                f"WHERE job_id = '{job.job_id}'")
    assert row == {"error_message": "interrupted by server restart"}, row
    assert cairn.catalog.get(Job, job.job_id).cleanup == {}  # type: ignore[union-attr]
    await trimmed(client)
    (count,) = await rows(client, "SELECT count(*) AS n FROM system.jobs")
    assert count == {"n": 2}, count
