"""This server's own BACKUP, finishing (its manifest in the target, its lock
gone, its catalog record not in yet), beside a RESTORE without backup_id
and another BACKUP's keep_last.

`Origin.written_here` trusted the catalog's records alone: the finishing
backup named this server and had no record, so a RESTORE without backup_id
was 409 ALREADY_EXISTS blaming a copy of the data directory, and keep_last
logged the same accusation. Now a backup a BACKUP job here is still writing
is this server's own and in progress: the RESTORE is 503 UNAVAILABLE (retry;
no older backup in its stead), keep_last neither counts nor drops it, and
says nothing about a copy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from tests.helpers import Gate, err, fill, job_row, rows, state, target_files, wait_job

COPY = "no record of writing"


async def test_restore_without_backup_id_beside_its_own_finishing_backup_is_unavailable(
        client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await fill(client, files=2)
    target = tmp_path / "backups" / "nightly"
    (old,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("backup.before_record", gate)
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    await gate.reach()  # manifest in, lock gone, no record yet
    assert target_files(target)["locks"] == set()
    (parked,) = target_files(target)["manifests"] - {old["backup_id"]}
    message = await err(client, "RESTORE DATABASE app FROM 'nightly' AS r", "UNAVAILABLE")
    assert message == (
        f"the newest backup of namespace 'app' in target '{target}' ('{parked}') is still "
        f"being written by job '{b['job_id']}' (its manifest is in the target, its job has "
        "not ended); nothing was restored. Retry once that job has ended, or name a backup "
        "with backup_id = '…'")
    message = await err(client, "RESTORE TABLE app.blobs FROM 'nightly' AS app.copy",
                        "UNAVAILABLE")
    assert f"still being written by job '{b['job_id']}'" in message
    with caplog.at_level(logging.WARNING):
        (new,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    assert not [r for r in caplog.records if COPY in r.getMessage()]
    # the finishing one neither counted nor dropped: the old one went
    assert target_files(target)["manifests"] == {parked, new["backup_id"]}
    gate.opened.set()
    assert (await wait_job(client, b["job_id"]))["status"] == "completed"
    (restored,) = await rows(client, "RESTORE DATABASE app FROM 'nightly' AS r")
    assert restored["backup_id"] == new["backup_id"]


async def test_restore_job_reads_whose_backups_when_it_runs(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """The RESTORE's job, not its statement, reads which backups are this
    server's: the statement came while the BACKUP was finishing, and its job
    waited for the one job slot until that BACKUP had recorded its backup
    and ended; it restores that backup."""
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=2)
    gate = Gate(state(client))
    faults.register("backup.before_record", gate)
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    await gate.reach()
    (r,) = await rows(client, "RESTORE DATABASE app FROM 'nightly' AS r WITH (detached = true)")
    assert (await job_row(client, r["job_id"]))["status"] == "queued"
    gate.opened.set()
    done = await wait_job(client, b["job_id"])
    assert done["status"] == "completed"
    restored = await wait_job(client, r["job_id"])
    assert restored["status"] == "completed", restored
    assert restored["backup_id"] == done["backup_id"]


async def test_restore_all_without_backup_id_beside_its_own_finishing_set_is_unavailable(
        client: Any, tmp_path: Path) -> None:
    """RESTORE ALL took the set a BACKUP ALL here was still finishing (its
    manifests in the target, its record not in), where RESTORE DATABASE
    without backup_id is 503 for the same: now RESTORE ALL is too."""
    await fill(client, files=2)
    (old,) = await rows(client, "BACKUP ALL TO 'sets'")
    gate = Gate(state(client))
    faults.register("backup.before_record", gate)
    (b,) = await rows(client, "BACKUP ALL TO 'sets' WITH (detached = true)")
    await gate.reach()
    message = await err(client, "RESTORE ALL FROM 'sets' WITH (replace = true)", "UNAVAILABLE")
    assert f"still being written by job '{b['job_id']}'" in message, message
    gate.opened.set()
    assert (await wait_job(client, b["job_id"]))["status"] == "completed"
    (restored,) = await rows(client, "RESTORE ALL FROM 'sets' WITH (replace = true)")
    assert restored["backup_id"] != old["backup_id"]
