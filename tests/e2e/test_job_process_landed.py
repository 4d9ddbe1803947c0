"""A BACKUP whose job process is killed from outside (the OOM killer, an
operator's kill -9) after its manifest landed in the target, before it
answered. The server took that for a backup that was not whole: it removed
the lock, failed the job ("the job process ended in the middle of its
work"), and never listed the backup its target held (not even after a
restart), while every RESTORE of the namespace without a backup_id was 409
ALREADY_EXISTS blaming a copy of the data directory for that backup."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage import jobproc
from tests.helpers import fill, ok, rows, sql, target_files


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "idle"
    return cairn_config


def lose_at(point: str) -> None:
    """SIGKILL the job process when its call reaches `point` (the fault runs
    in the server while the process waits for its answer)."""
    def lose(info: dict[str, Any]) -> None:
        for pid in jobproc.busy():
            os.kill(pid, signal.SIGKILL)

    faults.register(point, lose)


@pytest.mark.parametrize("what", ["DATABASE app", "TABLE app.blobs"])
async def test_a_backup_whose_job_process_is_lost_after_its_manifest_is_whole(
        client: Any, tmp_path: Path, what: str) -> None:
    await fill(client, files=2)
    lose_at("backup.after_manifest")
    status, body = await sql(client, f"BACKUP {what} TO 'bk'")
    faults.clear()
    assert status == 200, body
    backup_id = body["results"][0]["rows"][0]["backup_id"]
    job = (await rows(client, "SELECT status, error_message, backup_id FROM system.jobs "
                              "WHERE job_type = 'backup' ORDER BY job_id DESC LIMIT 1"))[0]
    assert job == {"status": "completed", "error_message": None, "backup_id": backup_id}
    shown = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    in_target = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'bk'")}
    assert shown == in_target == {backup_id}
    assert target_files(tmp_path / "backups" / "bk")["locks"] == set()
    assert (await rows(client, f"VERIFY BACKUP '{backup_id}'"))[0]["is_valid"] is True
    if what == "DATABASE app":
        await ok(client, "RESTORE DATABASE app FROM 'bk' AS copy")
        assert (await rows(client, "SELECT count(*) AS n FROM copy.blobs")) == (
            await rows(client, "SELECT count(*) AS n FROM app.blobs"))
