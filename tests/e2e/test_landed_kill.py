"""KILL JOB beside a BACKUP whose job process is lost after its manifest
landed (server/backup_run.py `_landed`, round 23). The KILL before the loss:
the job `cancelled`, no manifest, no lock (a cancelled job leaves no
backup). The KILL while the landed manifest was read back: the job took
the backup as whole but its clean-up, reading the cancel afresh, removed
the manifest first, then answered 200 `completed` with its backup_id for a
backup gone from its target. Now the cancel is read once: the manifest read
whole stays, the job completes and KILL says it came too late."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage import jobproc
from tests.helpers import Gate, ok, reseal, rows, sql, state, target_files


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "idle"
    return cairn_config


def lose(info: dict[str, Any]) -> None:
    for pid in jobproc.busy():
        os.kill(pid, signal.SIGKILL)


async def _kill(client: Any) -> None:
    job = (await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'backup' "
                              "AND status = 'running'"))[0]["job_id"]
    await ok(client, f"KILL JOB '{job}'")


async def _outcome(client: Any, tmp_path: Path) -> tuple[dict[str, Any], set[str], Any]:
    job = (await rows(client, "SELECT status, backup_id FROM system.jobs WHERE job_type = "
                              "'backup' ORDER BY job_id DESC LIMIT 1"))[0]
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    return job, listed, target_files(tmp_path / "backups" / "bk")


async def test_a_kill_before_the_job_process_is_lost_leaves_no_backup(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT); "
                     "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")
    gate = Gate(state(client))
    faults.register("backup.after_manifest", gate)
    task = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'bk'"))
    await gate.reach()
    await _kill(client)
    lose({})
    gate.opened.set()
    status, body = await task
    faults.clear()
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    job, listed, files = await _outcome(client, tmp_path)
    assert job["status"] == "cancelled" and listed == set()
    assert files["manifests"] == set() and files["locks"] == set()


async def test_a_kill_while_the_landed_manifest_is_read_keeps_it(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT); "
                     "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")
    faults.register("backup.after_manifest", lose)
    gate = Gate(match=lambda info: info["landed"])  # not cancelled by the KILL: parks
    faults.register("backup.landed_read", gate)
    task = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'bk'"))
    await gate.reach()
    job_id = (await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'backup'"))[
        0]["job_id"]
    kill = asyncio.create_task(sql(client, f"KILL JOB '{job_id}'"))
    while not state(client).jobs.is_cancelled(job_id):
        await asyncio.sleep(0.01)
    gate.opened.set()
    status, body = await task
    killed = await kill
    faults.clear()
    # The kill came after its point of no return: the job completes, KILL says so.
    assert status == 200, body
    assert "completed before the kill" in killed[1]["error"]["message"], killed
    job, listed, files = await _outcome(client, tmp_path)
    # Taken as whole: the backup stays, listed and in its target, whatever the job says.
    assert job["status"] == "completed" and job["backup_id"] in listed, (job, listed)
    assert files["manifests"] == {job["backup_id"]}, (status, body, job, files)
    assert files["locks"] == set()
    assert (await rows(client, f"VERIFY BACKUP '{job['backup_id']}'"))[0]["is_valid"] is True
    await ok(client, "RESTORE DATABASE app FROM 'bk' AS copy")
    assert await rows(client, "SELECT id FROM copy.t") == [{"id": 1}]


async def test_a_manifest_planted_under_its_id_is_not_taken_as_its_backup(
        client: Any, tmp_path: Path) -> None:
    """Anyone who can write the target copies b's manifest under the running
    BACKUP of a's id (shown in system.jobs), re-sealed to that id; the job
    process is lost before it wrote its own. It was taken as the backup:
    200 `completed`, a backup of b recorded for BACKUP DATABASE a, none of a."""
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (k INT PRIMARY KEY); "
                     "CREATE NAMESPACE b; CREATE TABLE b.t (k INT PRIMARY KEY); "
                     "INSERT INTO a.t VALUES (1); INSERT INTO b.t VALUES (9)")
    b1 = (await rows(client, "BACKUP DATABASE b TO 'bk' WITH (compression = 'none')"))[0][
        "backup_id"]
    manifests = tmp_path / "backups" / "bk" / "manifests"

    def plant(info: dict[str, Any]) -> None:
        (job,) = [j for j in state(client).jobs.live() if j.job_type == "backup"]
        planted = manifests / f"{job.backup_id}.json"
        shutil.copyfile(manifests / f"{b1}.json", planted)
        reseal(planted, lambda d: d.update(backup_id=job.backup_id))
        lose(info)

    faults.register("backup.before_manifest", plant)
    status, body = await sql(client, "BACKUP DATABASE a TO 'bk' WITH (compression = 'none')")
    faults.clear()
    assert status == 503, body  # the job process ended in the middle of its work
    job, listed, files = await _outcome(client, tmp_path)
    assert job["status"] == "failed" and listed == {b1}, (job, listed)
    assert files["manifests"] == {b1} and files["locks"] == set()
