"""PAUSE JOB and RESUME JOB on a data directory whose disk refuses writes
(a real full tmpfs, as test_disk_full_landed.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from server import faults
from tests.e2e import test_disk_full_landed as landed
from tests.e2e.test_disk_full_landed import recorded, refuse_writes, setup
from tests.helpers import Gate, job_row, ok, sql, state, wait_job

data_fs = landed.data_fs  # the data directory on a small tmpfs
cairn_config = landed.cairn_config


async def test_a_backup_paused_and_resumed_on_a_full_disk_completes(
        client: Any, data_fs: Path) -> None:
    """A running BACKUP (its buffered rows flushed: it writes nothing more
    to the data directory but its record) is paused while the disk is full:
    the job failed at its pause ("no space left …", the row of its status
    refused), PAUSE answering `paused` (then RESUME INVALID_ARGUMENT "is
    failed") or INVALID_ARGUMENT "failed before it could be paused". Now it
    is paused (read so, kept in memory), resumed, and completes."""
    first = await setup(client)
    await ok(client, "FLUSH TABLE app.t; INSERT INTO app.t VALUES (100, 'b'); FLUSH TABLE app.t")
    gate = Gate(state(client), match=lambda info: info.get("index") == 0)
    faults.register("backup.before_object", gate)
    (res,) = await ok(client, "BACKUP DATABASE app TO 'bk' WITH (detached = true)")
    job_id = res["rows"][0]["job_id"]
    await gate.reach()
    filler = await refuse_writes(client, data_fs)
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    deadline = time.monotonic() + 60
    while not state(client).jobs.pause_requested(job_id):  # PAUSE has asked: it waits
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    gate.opened.set()
    status, body = await pausing
    assert status == 200 and body["results"][0]["rows"][0]["status"] == "paused", body
    assert (await job_row(client, job_id))["status"] == "paused"  # was `failed`
    status, body = await sql(client, f"RESUME JOB '{job_id}'")
    assert status == 200, body  # was 400 "… is failed, not paused"
    done = await wait_job(client, job_id, timeout=60)
    assert done["status"] == "completed", done
    assert await recorded(client) == {first, done["backup_id"]}  # read as written while full
    filler.unlink()  # (written once writes work again: test_disk_full_landed.py)
