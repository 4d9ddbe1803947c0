"""Archiving after a cycle that failed: a segment written whose outcome was
unknown (the reply lost, the catalog batch after it failed), a base backup that
failed, a target emptied while archiving runs. The archive goes on with no
overlap and no gap, or takes a new base, and SHOW ARCHIVES never says
`running` with no error while nothing restorable is being shipped."""

from __future__ import annotations

import asyncio
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage.archive import segment
from storage.backup import Repository, resolve_target
from tests.helpers import ok, rows, sql

from .test_archive_guards import all_ids, backups, wait_for
from .test_archiving import FAST, segment_files, wait_shipped

PASS = "correct horse battery"


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


async def archive(client: Any) -> list[dict[str, Any]]:
    return await rows(client, "SELECT * FROM system.archives WHERE namespace = 'app'")


async def bases(client: Any) -> list[dict[str, Any]]:
    """The target's backups; none while the target is gone."""
    status, body = await sql(client, "SHOW BACKUPS FOR DATABASE app IN 'arch'")
    return body["results"][0]["rows"] if status == 200 else []


async def restore_end(client: Any, as_name: str, options: str = "") -> set[int]:
    """Restore app as of the newest window's end (VERIFY ARCHIVE valid first)."""
    with_pass = f" WITH (encryption_passphrase = '{PASS}')" if options else ""
    report = (await rows(client, f"VERIFY ARCHIVE FOR DATABASE app IN 'arch'{with_pass}"))[0]
    assert report["is_valid"] is True, report["errors"]
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    newest = max(points, key=lambda p: p["end_time"])
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS {as_name} WITH "
                     f"(as_of = '{newest['end_time']}'{options})")
    return await all_ids(client, as_name)


async def test_an_encrypted_archive_takes_a_new_base(client: Any) -> None:
    """DROP BACKUP of an encrypted archive's base after a segment was written:
    the new base's job failed with "cannot pickle 'AESGCM'" (the archiver's
    Repository, holding its opened keys, went to the job process), every
    60 s, while SHOW ARCHIVES said running. Now the base is taken."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH "
                     f"(interval = '100ms', encryption_passphrase = '{PASS}')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [first] = await backups(client)
    await ok(client, f"DROP BACKUP '{first['backup_id']}' IN 'arch'")
    await ok(client, "INSERT INTO app.t VALUES (3)")
    [second] = await wait_for(lambda: backups(client))
    assert second["label"] == "archive base" and second["encrypted"] is True
    await ok(client, "INSERT INTO app.t VALUES (4)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    jobs = await rows(client, "SELECT status, error_message FROM system.jobs "
                              "WHERE job_type = 'backup'")
    assert {j["status"] for j in jobs} == {"completed"}, jobs
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await restore_end(client, "r", f", encryption_passphrase = '{PASS}'") == {1, 2, 3, 4}


def test_a_repository_with_opened_keys_pickles_without_them(tmp_path: Path) -> None:
    repo = Repository(resolve_target("arch", [str(tmp_path)], {}), passphrase=PASS)
    assert repo.writer_keys() is not None
    copy = pickle.loads(pickle.dumps(repo))
    assert copy.store.write_keys is None and copy.store.keyring == []
    assert copy.writer_keys() == repo.writer_keys()  # the same key file, opened again


async def test_a_segment_written_by_a_failed_cycle_is_continued_not_overlapped(
        client: Any, cairn_config: Config) -> None:
    """The segment lands, then the cycle fails before the catalog records it
    (on S3: CompleteMultipartUpload's reply lost). Before, the next cycle wrote
    a segment from the same start to a later end: the two overlapped, every
    RESTORE of the archive (even to a time before) was BACKUP_INVALID, and
    SHOW ARCHIVES said running. Now it finds the landed segment and goes on
    after it."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    landed: list[str] = []

    def lost_reply(info: dict[str, Any]) -> None:
        if not landed:
            landed.append(info["segment"])
            raise OSError("the reply to the segment's upload was lost")

    faults.register("archive.after_segment", lost_reply)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_for(lambda: asyncio.sleep(0, landed))
    await ok(client, "INSERT INTO app.t VALUES (3)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    root = Path(cairn_config.backup_roots[0])
    names = sorted(n for n in (segment.parse_name(p.name) for p in segment_files(root))
                   if n is not None)
    assert landed[0] in {n.file for n in names}
    assert all((a.last_lsn, a.through_us) == (b.after_lsn, b.after_us)
               for a, b in zip(names, names[1:], strict=False)), names
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True and len(report["windows"]) == 1, report
    assert report["changes"] == 3  # each INSERT shipped once
    assert await restore_end(client, "r") == {1, 2, 3}


async def test_a_base_that_fails_shows_failed_until_one_is_taken(client: Any) -> None:
    """A new base whose job fails with a bug: SHOW ARCHIVES said failed for a
    moment, then running with last_error NULL at the next cycle, while only
    the check every 60 s tried the base again. Now it stays failed with the
    job's error, the base is retried with the backoff, and once one is taken
    everything restores."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)

    def bug(info: dict[str, Any]) -> None:
        raise RuntimeError("a bug in the base backup")

    faults.register("backup.snapshot_taken", bug)
    [first] = await backups(client)
    await ok(client, f"DROP BACKUP '{first['backup_id']}' IN 'arch'")
    await ok(client, "INSERT INTO app.t VALUES (3)")

    async def failed() -> bool:
        return (await archive(client))[0]["status"] == "failed"

    await wait_for(failed)
    for _ in range(20):  # ~1 s: several cycles and retries
        [row] = await archive(client)
        assert row["status"] == "failed" and "a bug in the base backup" in row["last_error"], row
        await asyncio.sleep(0.05)
    faults.clear()
    [second] = await wait_for(lambda: backups(client), timeout=40)
    assert second["label"] == "archive base"
    await ok(client, "INSERT INTO app.t VALUES (4)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await restore_end(client, "r") == {1, 2, 3, 4}


async def test_an_archive_restore_refuses_is_left_for_a_new_one(
        client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that is not a segment put in the running archive's folder (or
    two segments overlapping, as a Cairn that wrote again after a lost reply
    left them): RESTORE refuses every time in that archive. Before, archiving
    went on shipping into it, `running`, no new base, nothing restorable from
    then on. Now the next check starts a new archive from a new base."""
    from server import archiving

    monkeypatch.setattr(archiving, "BASE_CHECK_S", 0.2)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [first] = await backups(client)
    folder = segment_files(Path(cairn_config.backup_roots[0]))[0].parent
    (folder / "notes.txt").write_text("not a segment")

    async def replaced() -> list[dict[str, Any]]:
        return [b for b in await backups(client) if b["backup_id"] != first["backup_id"]]

    [second] = await wait_for(replaced)
    await ok(client, "INSERT INTO app.t VALUES (3)")
    shown = await wait_shipped(client)
    # running, and why it left the old archive (server/archive_fork.py)
    assert shown["status"] == "running" and "notes.txt" in shown["last_error"], shown
    assert "goes on in a new archive" in shown["last_error"], shown
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    newest = max(points, key=lambda p: p["end_time"])
    assert newest["base_backup_id"] == second["backup_id"]
    assert newest["archive_id"] != folder.name
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{newest['end_time']}')")
    assert await all_ids(client, "r") == {1, 2, 3}


@pytest.mark.parametrize("encrypted", [False, True])
async def test_a_target_emptied_while_archiving_is_set_up_again(
        client: Any, cairn_config: Config, encrypted: bool) -> None:
    """The target's folder removed while archiving runs. Before, the archiver
    (its config and key read once) wrote segments there, and at its 60 s
    check a base, all without config.json (or the key file): every reader
    then refused the target as damaged, while SHOW ARCHIVES said running.
    Now the next segment finds it gone: failed, saying so, then a new base
    that writes config.json and a key file again, and a new window that
    restores."""
    secret = f", encryption_passphrase = '{PASS}'" if encrypted else ""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms'{secret})")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    target = Path(cairn_config.backup_roots[0]) / "arch"
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        while True:
            seen.extend(await archive(client))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        shutil.rmtree(target)
        await ok(client, "INSERT INTO app.t VALUES (3)")
        [second] = await wait_for(lambda: bases(client))
        await ok(client, "INSERT INTO app.t VALUES (4)")
        shown = await wait_shipped(client)
    finally:
        watcher.cancel()
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    assert (target / "config.json").is_file()
    assert encrypted == any((target / "keys").glob("*.json"))
    assert second["label"] == "archive base"
    said = [r["last_error"] for r in seen if r["status"] == "failed"]
    assert said and "no longer holds config.json" in said[0], seen
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await restore_end(client, "r", secret) == {1, 2, 3, 4}


async def test_a_target_removed_before_any_row_shipped_is_set_up_again(
        client: Any, cairn_config: Config) -> None:
    """The target's folder removed right after the base's first (empty)
    segment, before any segment with rows: archiving stayed `failed` for good
    ("backup target … does not exist"), the folder never made again, no new
    base, a warning every few seconds. Now a new base sets the target up again
    (config.json) and the new window restores every row."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    root = Path(cairn_config.backup_roots[0])
    target = root / "arch"

    async def shipped() -> list[Path]:
        return segment_files(root)

    [first] = await wait_for(shipped)
    assert first.stat().st_size > 0
    shutil.rmtree(target)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    [second] = await wait_for(lambda: bases(client), timeout=20)
    assert second["label"] == "archive base"
    await ok(client, "INSERT INTO app.t VALUES (3)")
    shown = await wait_shipped(client, timeout=20)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    assert (target / "config.json").is_file()
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await restore_end(client, "r") == {1, 2, 3}
