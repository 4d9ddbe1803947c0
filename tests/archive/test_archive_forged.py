"""Segments planted at the end of an archive by someone who can write to the
target: a restore to a time they cover must refuse them as VERIFY ARCHIVE does,
and with a passphrase a plain segment (anyone can write one) is not read as
part of an encrypted archive."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from catalog import Archive
from server import backup_run
from server.config import Config
from storage.archive import segment
from storage.backup.schema import ArchiveRef
from tests.helpers import ok, rows, sql

from .test_archiving import archive_two_rows, segment_files, wait_shipped


def plant_after_end(root: Path, body: bytes | None) -> tuple[Path, str, str]:
    """A segment continuing the archive's last one by one second: `body` as its
    bytes, or (None) a well-formed empty plain segment. Returns its path, and
    the end of the archive before and after it (ISO, ms)."""
    last_file = segment_files(root)[-1]
    last = segment.parse_name(last_file.name)
    assert last is not None
    forged = segment.SegmentName(last.last_lsn, last.last_lsn, last.through_us,
                                 last.through_us + 1_000_000)
    archive_id = last_file.parent.name
    data = body if body is not None else segment.seal(
        "app", archive_id, forged, segment.empty_body(), 0, False, None)
    path = last_file.parent / forged.file
    path.write_bytes(data)
    return path, iso(last.through_us), iso(forged.through_us)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def refused(client: Any, text: str, fragment: str) -> None:
    status, body = await sql(client, text)
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert fragment in body["error"]["message"], body


async def test_restore_to_a_time_in_a_planted_empty_segment_is_refused_as_verify_does(
        client: Any, cairn_config: Config) -> None:
    await archive_two_rows(client)
    path, end, forged_end = plant_after_end(Path(cairn_config.backup_roots[0]), b"not a segment")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert point["end_time"] == forged_end  # what the names say
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert not report["is_valid"] and path.name in str(report["errors"]), report
    # Before, this restored, reporting the state as of a time nothing vouched for.
    await refused(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{forged_end}')",
                  path.name)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_a_plain_segment_is_not_read_into_an_encrypted_archive(
        client: Any, cairn_config: Config) -> None:
    await archive_two_rows(client, ", encryption_passphrase = 'pw'")
    path, end, forged_end = plant_after_end(Path(cairn_config.backup_roots[0]), None)
    key = "encryption_passphrase = 'pw'"
    report = (await rows(client, f"VERIFY ARCHIVE FOR DATABASE app IN 'arch' WITH ({key})"))[0]
    assert not report["is_valid"] and "not encrypted" in str(report["errors"]), report
    await refused(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                          f"(as_of = '{forged_end}', {key})", "not encrypted")
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}', {key})")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]
    path.unlink()
    report = (await rows(client, f"VERIFY ARCHIVE FOR DATABASE app IN 'arch' WITH ({key})"))[0]
    assert report["is_valid"], report


async def test_an_encrypted_backup_is_no_base_of_a_plain_archive(client: Any) -> None:
    """A plain archive's window must stay restorable without a passphrase: an
    encrypted BACKUP into its target (which needs the passphrase, which in
    turn refuses plain segments) does not become a base of its window."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await ok(client, "BACKUP DATABASE app TO 'arch' WITH (encryption_passphrase = 'pw')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    (window,) = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert window["base_backups"] == 1, window  # START ARCHIVING's own base only
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{window['end_time']}')")
    assert status == 200, body
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_a_window_with_an_encrypted_base_from_before_restores_from_its_plain_one(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows an older Cairn wrote: an encrypted BACKUP became a base of a
    plain archive. A restore without a passphrase takes the window's newest
    plain base instead of failing on the encrypted one."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    def older(cairn: Any, plan: Any, before: Any, snap: Any) -> ArchiveRef:
        now = cairn.catalog.get(Archive, plan.namespace)  # any backup there was a base
        return ArchiveRef(id=now.archive_id, lsn=snap.cuts[plan.namespace][0])

    with monkeypatch.context() as m:  # the older Cairn
        m.setattr(backup_run, "archive_of", older)
        await ok(client, "BACKUP DATABASE app TO 'arch' WITH (encryption_passphrase = 'pw')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    (window,) = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert window["base_backups"] == 2, window
    listed = await rows(client, "SHOW BACKUPS IN 'arch'")
    assert sorted(b["encrypted"] for b in listed) == [False, True], listed
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{window['end_time']}')")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]
