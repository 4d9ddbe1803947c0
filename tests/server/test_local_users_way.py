"""Other local users and the way to a backup target, as a job makes it: a
folder another user makes after the statement was accepted, the folders made
on the way to a target or an archive, a file on the way."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from server import faults
from tests.helpers import ok, sql, wait_job


def _theirs(path: Path, mode: int = 0o777) -> None:
    """`path` made a folder of another user's (uid 65534), as if they made it.
    CI runs the tests as root, which may give a folder to another uid."""
    path.mkdir(mode=mode, parents=True)
    path.chmod(mode)
    os.chown(path, 65534, 65534)


async def test_a_folder_another_user_makes_after_the_statement_is_not_written_into(
        client: Any, cairn_config: Any, tmp_path: Path) -> None:
    """A detached (or queued) BACKUP made its target folder in the job without
    looking at its owner: a folder another user made between the statement and
    the job (in a shared root, where the name was free when it was accepted)
    took the backup, theirs to read, remove or replace."""
    root = Path(cairn_config.backup.roots[0])
    await ok(client, "CREATE NAMESPACE n1; CREATE TABLE n1.t (id INT PRIMARY KEY)")
    await ok(client, "INSERT INTO n1.t VALUES (1)")
    for target, taken in (("later/nightly", root / "later"),  # a folder on the way
                          ("late", root / "late"),  # the target itself
                          ("arch/late.tar.zst", root / "arch")):  # an archive's folder
        faults.register("backup.snapshot_taken", lambda info, p=taken: _theirs(p))
        try:
            (row,) = (await ok(client, f"BACKUP DATABASE n1 TO '{target}' "
                                       "WITH (detached = true)"))[0]["rows"]
            ended = await wait_job(client, row["job_id"], timeout=60)
        finally:
            faults.clear()
        assert ended["status"] == "failed", ended
        assert f"'{taken}' belongs to another user (uid 65534)" in ended["error_message"], ended
        assert list(taken.iterdir()) == [], target
    # Not detached: the statement's answer is the job's error, PERMISSION_DENIED.
    taken = root / "sync"
    faults.register("backup.snapshot_taken", lambda info: _theirs(taken, 0o755))
    try:
        status, body = await sql(client, "BACKUP DATABASE n1 TO 'sync/nightly.tar'")
    finally:
        faults.clear()
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", body
    assert f"'{taken}' belongs to another user (uid 65534)" in body["error"]["message"], body
    assert list(taken.iterdir()) == []
    await ok(client, "BACKUP DATABASE n1 TO 'mine'")  # as before


async def test_folders_made_on_the_way_to_a_target_or_archive_are_the_owners_alone(
        client: Any, cairn_config: Any) -> None:
    """`x/y/` of `x/y/a.tar.zst` (and of `x/y/target`) were made 0755 less the
    umask: the target's own folder was 0700, the ones above it not."""
    root = Path(cairn_config.backup.roots[0])
    old = os.umask(0o022)
    try:
        await ok(client, "CREATE NAMESPACE n1; CREATE TABLE n1.t (id INT PRIMARY KEY)")
        await ok(client, "BACKUP DATABASE n1 TO 'x/y/a.tar.zst'")
        await ok(client, "BACKUP DATABASE n1 TO 'p/q/plain'")
    finally:
        os.umask(old)
    for made in ("x", "x/y", "p", "p/q", "p/q/plain"):
        assert stat.S_IMODE(os.stat(root / made).st_mode) == 0o700, made


async def test_a_target_below_a_regular_file_names_the_file(
        client: Any, cairn_config: Any) -> None:
    """An archive (or a folder) target below a regular file said only "File
    exists" (or "Not a directory")."""
    root = Path(cairn_config.backup.roots[0])
    root.mkdir(mode=0o700, exist_ok=True)
    (root / "notes.txt").write_text("mine")
    await ok(client, "CREATE NAMESPACE n1; CREATE TABLE n1.t (id INT PRIMARY KEY)")
    for target in ("notes.txt/a.tar.zst", "notes.txt/x/a.tar", "notes.txt/plain"):
        status, body = await sql(client, f"BACKUP DATABASE n1 TO '{target}'")
        assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", (target, body)
        message = body["error"]["message"]
        assert f"'{root / 'notes.txt'}' is a file, not a folder" in message, (target, message)
    assert (root / "notes.txt").read_text() == "mine"


async def test_a_shared_sticky_folder_is_not_a_target(client: Any, cairn_config: Any) -> None:
    """A folder anyone may write to, with the sticky bit (/tmp's mode, 1777), is
    a fine way to a target but was taken as a target itself: another user who
    made its manifests/, objects/ (theirs, 0777) and a config.json first had
    every backup written into folders of theirs, to remove or replace."""
    root = Path(cairn_config.backup.roots[0])
    shared = root / "shared"
    shared.mkdir(mode=0o1777, parents=True)
    shared.chmod(0o1777)
    for name in ("manifests", "objects", "locks", "tmp"):
        _theirs(shared / name)
    (shared / "config.json").write_text(
        '{"format": "cairn-backup", "format_version": 1, "features": ["namespace-server"], '
        '"created_at": "2026-12-07T06:46:58.980Z"}')
    os.chown(shared / "config.json", 65534, 65534)
    await ok(client, "CREATE NAMESPACE n1; CREATE TABLE n1.t (id INT PRIMARY KEY)")
    await ok(client, "INSERT INTO n1.t VALUES (1)")
    for statement in ("BACKUP DATABASE n1 TO 'shared'", "SHOW BACKUPS IN 'shared'",
                      "RESTORE DATABASE n1 FROM 'shared' AS n2"):
        status, body = await sql(client, statement)
        assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", (statement, body)
        assert f"'{shared}' can be written by any user (mode 1777)" in body["error"]["message"]
    for name in ("manifests", "objects", "locks", "tmp"):
        assert list((shared / name).iterdir()) == [], name
    await ok(client, "BACKUP DATABASE n1 TO 'shared/mine'")  # a way, as before
    assert stat.S_IMODE(os.stat(shared / "mine").st_mode) == 0o700
