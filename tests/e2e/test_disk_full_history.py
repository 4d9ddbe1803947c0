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


async def test_trimming_history_on_a_full_disk_waits_saying_so_once(
        client: Any, data_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await setup(client)
    await ok(client, "FLUSH TABLE app.t; FLUSH TABLE app.pad")
    (status, body), filler = await parked(client, "backup.before_record",
                                          "BACKUP DATABASE app TO 'bk'", data_fs)
    assert status == 200, body  # it ended while the disk was full: a trim after it
    for _ in range(3):
        await trimmed(client)
    traces = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not traces, traces  # was "trimming job history failed" and a trace, each time
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trimming")]
    assert len(said) == 1 and said[0].startswith(
        "trimming job history waits until the data directory takes writes again: no space "
        "left on the data directory"), said
    await space_back(client, filler)
    await trimmed(client)
    (count,) = await rows(client, "SELECT count(*) AS n FROM system.jobs")
    assert count == {"n": 2}, count


async def test_retrying_a_pending_clean_up_on_a_full_disk_says_so_once(
        client: Any, data_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A clean-up left pending by an earlier start (an interrupted DROP's
    sweep of a target that was not mounted then) is tried again every
    minute; with the disk full its row could not be written: a trace each
    minute ("retrying pending clean-ups failed"). Now one line, and the
    retry with room finishes it."""
    caplog.set_level(logging.INFO)
    await setup(client)
    cairn = state(client)
    uri = str(Path(cairn.config.backup.roots[0]) / "bk")
    job = Job(job_id=new_id("job"), job_type="drop_backup", status="failed", target=uri,
              error_message="interrupted by server restart",
              cleanup={"target": uri, "sweep": True, PENDING: "target not mounted"})
    cairn.catalog.put(job)  # what start-up's recovery left (recovery.clean)
    cairn.jobs.pending.add(job.job_id)
    filler = await landed.refuse_writes(client, data_fs)
    retrying = asyncio.create_task(recovery.retry_loop(cairn.jobs, period=0.05))
    try:
        await asyncio.sleep(1)
        traces = [r.getMessage() for r in caplog.records if r.exc_info]
        assert not traces, traces  # was a trace every period
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
        assert len(said) == 1 and said[0].startswith(
            "retrying pending clean-ups waits until the data directory takes writes again: "
            "no space left on the data directory"), said
        # still pending: it was taken for done at the refused write of its row,
        # the row saying pending on disk until the next start
        assert job.job_id in cairn.jobs.pending
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
