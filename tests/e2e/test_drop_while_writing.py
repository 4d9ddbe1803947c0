"""DROP BACKUP and keep_last beside a backup whose manifest has landed but
whose job has not ended (storage/backup/writing.py, server/backup_writing.py).

The job records its backup in the catalog only after the manifest is in the
target (and after its lock there goes). A drop in between removed the
manifest, freed nothing (the lock still held the objects) and forgot no
record: the job's record came after it, so system.backups listed a backup
its target no longer held, VERIFY of it was NOT_FOUND, and its objects stayed
with no manifest. Now such a backup is refused (409) by DROP BACKUP and
skipped by keep_last, on this server and on another sharing the target."""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from storage.backup.oserrors import reading
from storage.backup.pruning import LocksAndPrune
from tests.helpers import Gate, err, fill, rows, state, target_files, wait_job


async def detached(client: Any, text: str) -> str:
    return str((await rows(client, text + " WITH (detached = true)"))[0]["job_id"])


async def in_step(client: Any, target: Path) -> None:
    """The catalog (system.backups) lists exactly the backups the target holds,
    and each of them VERIFYs."""
    listed = {r["backup_id"] for r in await rows(
        client, f"SELECT backup_id FROM system.backups WHERE target = '{target}'")}
    assert listed == target_files(target)["manifests"]
    for backup_id in listed:
        (v,) = await rows(client, f"VERIFY BACKUP '{backup_id}'")
        assert v["is_valid"], v


async def test_drop_backup_of_a_backup_whose_job_has_not_ended_is_refused(
        client: Any, tmp_path: Path) -> None:
    await fill(client, files=2)
    target = tmp_path / "backups" / "nightly"
    gate = Gate(state(client))
    faults.register("backup.after_manifest", gate)
    job_id = await detached(client, "BACKUP DATABASE app TO 'nightly'")
    await gate.reach()  # the manifest is in the target, the lock too
    (backup_id,) = target_files(target)["manifests"]
    message = await err(client, f"DROP BACKUP '{backup_id}' IN 'nightly'", "ALREADY_EXISTS")
    assert message == (f"backup '{backup_id}' in target '{target}' is still being written "
                       f"by job '{job_id}'; drop it once that job has ended")
    gate.opened.set()
    assert (await wait_job(client, job_id))["status"] == "completed"
    await in_step(client, target)
    (dropped,) = await rows(client, f"DROP BACKUP '{backup_id}'")
    assert dropped["bytes_freed"] > 0
    held = target_files(target)
    assert held["manifests"] == held["objects"] == held["locks"] == set()
    assert await rows(client, "SELECT backup_id FROM system.backups") == []


async def test_a_member_of_a_backup_set_being_written_is_refused(
        client: Any, tmp_path: Path) -> None:
    await fill(client, ns="app", files=1)
    await fill(client, ns="crm", files=1)
    target = tmp_path / "backups" / "nightly"
    gate = Gate(state(client))
    faults.register("backup.after_manifest", gate)
    job_id = await detached(client, "BACKUP DATABASE app, crm TO 'nightly'")
    await gate.reach()  # both members are in the target, the set's lock too
    first = sorted(target_files(target)["manifests"])[0]
    message = await err(client, f"DROP BACKUP '{first}' IN 'nightly'", "ALREADY_EXISTS")
    assert "is still being written" in message and job_id in message
    gate.opened.set()
    assert (await wait_job(client, job_id))["status"] == "completed"
    assert len(target_files(target)["manifests"]) == 2
    await in_step(client, target)


async def test_keep_last_skips_a_backup_whose_job_has_not_ended(
        client: Any, tmp_path: Path) -> None:
    """Another BACKUP's keep_last = 1 dropped the parked one (older by its
    snapshot), whose job then recorded it: the catalog kept a backup the
    target no longer held."""
    await fill(client, files=2)
    target = tmp_path / "backups" / "nightly"
    (old,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("backup.after_manifest", gate)
    job_id = await detached(client, "BACKUP DATABASE app TO 'nightly'")
    await gate.reach()
    (parked,) = target_files(target)["manifests"] - {old["backup_id"]}
    (new,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    (job,) = await rows(client, f"SHOW JOB '{new['job_id']}'")
    result = json.loads(job["result"]) if isinstance(job["result"], str) else job["result"]
    assert result["dropped"] == [old["backup_id"]]
    gate.opened.set()
    assert (await wait_job(client, job_id))["status"] == "completed"
    assert target_files(target)["manifests"] == {parked, new["backup_id"]}
    assert target_files(target)["locks"] == set()
    await in_step(client, target)


async def test_refused_after_the_lock_went_until_the_job_recorded_it(
        client: Any, tmp_path: Path) -> None:
    """The lock is gone once the manifest is written; the catalog's record
    comes after. A drop between the two is refused by this server's job
    list, and keep_last skips the backup."""
    await fill(client, files=2)
    target = tmp_path / "backups" / "nightly"
    (old,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("backup.before_record", gate)
    job_id = await detached(client, "BACKUP DATABASE app TO 'nightly'")
    await gate.reach()
    assert target_files(target)["locks"] == set()
    (parked,) = target_files(target)["manifests"] - {old["backup_id"]}
    message = await err(client, f"DROP BACKUP '{parked}' IN 'nightly'", "ALREADY_EXISTS")
    assert f"still being written by job '{job_id}'" in message
    (new,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    assert target_files(target)["manifests"] == {parked, new["backup_id"]}
    gate.opened.set()
    assert (await wait_job(client, job_id))["status"] == "completed"
    await in_step(client, target)


async def test_another_server_cannot_drop_a_backup_whose_lock_is_in_the_target(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """Another server sees no job of this one: the lock in the target tells."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    await fill(a, files=2)
    target = tmp_path / "backups" / "shared"
    gate = Gate(state(a))
    faults.register("backup.after_manifest", gate)
    job_id = await detached(a, "BACKUP DATABASE app TO 'shared'")
    await gate.reach()
    (backup_id,) = target_files(target)["manifests"]
    message = await err(b, f"DROP BACKUP '{backup_id}' IN 'shared'", "ALREADY_EXISTS")
    assert message.startswith(f"backup '{backup_id}' in target '{target}' is still being "
                              f"written: its lock 'locks/{backup_id}.json' is in the target "
                              "(process ")
    assert message.endswith("; drop it once its job has ended")
    gate.opened.set()
    assert (await wait_job(a, job_id))["status"] == "completed"
    await in_step(a, target)
    (dropped,) = await rows(b, f"DROP BACKUP '{backup_id}' IN 'shared'")
    assert dropped["bytes_freed"] > 0


async def test_a_backup_another_server_dropped_before_it_was_recorded_is_forgotten(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """Between the lock going and the record, only this server knows the job:
    another server's DROP BACKUP goes through. The job, once it has recorded
    the backup, finds its manifest gone, forgets it again and says so."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    await fill(a, files=2)
    target = tmp_path / "backups" / "shared"
    gate = Gate(state(a))
    faults.register("backup.before_record", gate)
    job_id = await detached(a, "BACKUP DATABASE app TO 'shared'")
    await gate.reach()
    (backup_id,) = target_files(target)["manifests"]
    (dropped,) = await rows(b, f"DROP BACKUP '{backup_id}' IN 'shared'")
    assert dropped["bytes_freed"] > 0
    gate.opened.set()
    job = await wait_job(a, job_id)
    assert job["status"] == "completed"
    assert job["error_message"] == (
        f"backup '{backup_id}' was dropped from target '{target}' before the job ended (a "
        "drop that cannot see this server's jobs: another server's): the catalog does not "
        "list it")
    assert await rows(a, "SELECT backup_id FROM system.backups") == []
    assert target_files(target)["objects"] == set()


async def test_a_backup_whose_target_cannot_be_looked_at_after_its_record_is_completed(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The job looks at the target again once it has recorded its backup (for a
    drop by another server meanwhile). That look failing (too many open files)
    left it `completed` and a WARNING "could not look for its manifest after
    recording it": `completed` is the truth, since the manifest was written
    and checked before the record; the WARNING now says so."""
    await fill(client, files=1)

    def short(self: LocksAndPrune, backup_id: str) -> bool:
        with reading(self.uri):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(LocksAndPrune, "has_manifest", short)
    with caplog.at_level(logging.WARNING, logger="cairn.backup"):
        (done,) = await rows(client, "BACKUP DATABASE app TO 'bk'")
    assert done["status"] == "completed"
    job = (await rows(client, f"SHOW JOB '{done['job_id']}'"))[0]
    assert job["status"] == "completed" and not job["error_message"], job
    assert f"backup {done['backup_id']} is complete and recorded" in caplog.text
    assert "too many open files" in caplog.text
    monkeypatch.undo()
    (listed,) = await rows(client, "SHOW BACKUPS IN 'bk'")
    assert listed["backup_id"] == done["backup_id"]
    (verified,) = await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'bk'")
    assert verified["is_valid"] is True, verified


async def test_a_drop_killed_before_its_manifest_went_drops_nothing(
        client: Any, tmp_path: Path) -> None:
    """A DROP BACKUP killed while it waited (on a store, run in the server) was
    answered `cancelled` and then, once the wait ended, went on and dropped
    the backup. Killed before the manifest goes, it removes nothing."""
    import asyncio

    from tests.helpers import sql

    await fill(client, files=1)
    (kept,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("drop.before_manifest", gate)
    try:
        job_id = await detached(client, f"DROP BACKUP '{kept['backup_id']}' IN 'nightly'")
        await gate.reach()
        killing = asyncio.create_task(sql(client, f"KILL JOB '{job_id}'"))
        await asyncio.sleep(0.2)
        gate.opened.set()
        await killing
    finally:
        gate.opened.set()
        faults.clear()
    assert (await wait_job(client, job_id))["status"] == "cancelled"
    target = tmp_path / "backups" / "nightly"
    assert target_files(target)["manifests"] == {kept["backup_id"]}
    await in_step(client, target)
