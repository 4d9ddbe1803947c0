"""Archiving's guards: it never ships changes that no base backup can use (a
dropped base is replaced by a new one), and archived commit times never go back,
even when the wall clock does."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import BackupInvalid
from server.app import create_app
from server.config import Config
from storage.archive import changes as changes_mod
from storage.archive import segment, store
from tests.helpers import ok, rows

from .test_archiving import FAST, archive_one_row_and_close, segment_files, wait_shipped


async def backups(client: Any) -> list[dict[str, Any]]:
    return await rows(client, "SHOW BACKUPS FOR DATABASE app IN 'arch'")


async def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def all_ids(client: Any, ns: str) -> set[int]:
    return {r["id"] for r in await rows(client, f"SELECT id FROM {ns}.t")}


async def test_dropped_base_is_replaced(client: Any) -> None:
    """DROP BACKUP of the only base while archiving runs: archiving takes a new
    base at once, and everything written before, between and after restores."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [first] = await backups(client)
    await ok(client, f"DROP BACKUP '{first['backup_id']}' IN 'arch'")
    await ok(client, "INSERT INTO app.t VALUES (3)")

    async def replaced() -> list[dict[str, Any]]:
        found = await backups(client)
        return [b for b in found if b["backup_id"] != first["backup_id"]]

    [second] = await wait_for(replaced)
    assert second["label"] == "archive base"
    await ok(client, "INSERT INTO app.t VALUES (4)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert [p["base_backup_id"] for p in points] == [second["backup_id"]]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{points[0]['end_time']}')")
    assert await all_ids(client, "r") == {1, 2, 3, 4}
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]


async def test_keep_last_backup_is_a_base_itself(client: Any) -> None:
    """keep_last dropping the archive's base keeps archiving on the window the
    new backup starts: no extra base is taken."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    await ok(client, "BACKUP DATABASE app TO 'arch' WITH (keep_last = 1)")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await asyncio.sleep(0.3)  # a few cycles: a needless base would show now
    assert len(await backups(client)) == 1
    assert len(await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")) == 1


async def test_base_deleted_while_down_is_replaced_at_start(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """Base manifests deleted by hand while the server was down: at start the
    archiver finds no base of its window and takes a new one."""
    client = await aiohttp_client(create_app(cairn_config))
    await archive_one_row_and_close(client)
    shutil.rmtree(Path(cairn_config.backup_roots[0]) / "arch" / "manifests")
    client = await aiohttp_client(create_app(cairn_config))
    await wait_for(lambda: backups(client))
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]  # the new run does not overlap
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{point['end_time']}')")
    assert await all_ids(client, "r") == {1, 2}


async def test_clock_going_back_keeps_archived_times_monotonic(
        client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The wall clock jumps back an hour mid-archive: commit times go on
    increasing from the last one (1 µs a change), segments stay continuous, and
    restoring to the end holds every write."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    real = changes_mod.now_us
    monkeypatch.setattr(changes_mod, "now_us", lambda: real() - 3_600_000_000)
    for i in range(2, 6):
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
    await wait_shipped(client)
    warned = [r for r in caplog.records if "wall clock is" in r.getMessage()]
    assert len(warned) == 1  # once per jump, not once per change
    await ok(client, "STOP ARCHIVING DATABASE app")
    names = sorted(n for n in (segment.parse_name(p.name)
                               for p in segment_files(Path(cairn_config.backup_roots[0])))
                   if n is not None)
    assert all(a.through_us == b.after_us for a, b in zip(names, names[1:], strict=False))
    assert all(n.after_us <= n.through_us for n in names)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True and len(report["windows"]) == 1, report
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    end = names[-1].through_us  # shown to the millisecond; as_of takes microseconds
    assert point["end_time"] == store.iso(end)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{store.iso_exact(end)}')")
    assert await all_ids(client, "r") == {1, 2, 3, 4, 5}


async def test_a_planted_segment_name_does_not_move_where_archiving_resumes(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """An empty file named as a segment continuing the archive up to lsn 9e18 and
    the year 5138, planted while the server was down. Before, the restart took
    the name as the archive's end: SHOW ARCHIVES said running, archived until
    5138, and no change was ever shipped again. Now only a segment that reads
    back and ends within what the server committed is continued from."""
    client = await aiohttp_client(create_app(cairn_config))
    await archive_one_row_and_close(client)
    last = segment.parse_name(segment_files(Path(cairn_config.backup_roots[0]))[-1].name)
    assert last is not None
    forged = segment.SegmentName(last.last_lsn, 9 * 10**18, last.through_us, segment.MAX_US)
    planted = segment_files(Path(cairn_config.backup_roots[0]))[-1].parent / forged.file
    planted.write_bytes(b"")

    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "INSERT INTO app.t VALUES (2)")
    shown = await wait_shipped(client)
    assert shown["archived_until"] < "2100" and shown["status"] == "running", shown
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False and forged.file in str(report["errors"]), report
    planted.unlink()  # the operator removes the file Cairn did not write
    await ok(client, "INSERT INTO app.t VALUES (3)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]
    # the archive with a segment past its end is never written into again
    # (server/archive_fork.py): a new one, from a new base, goes on
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len({p["archive_id"] for p in points}) == 2, points
    point = max(points, key=lambda p: p["end_time"])
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{point['end_time']}')")
    assert await all_ids(client, "r") == {1, 2, 3}


async def test_a_segment_lost_from_the_middle_takes_a_new_base(
        client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A segment deleted from the middle of the window (by hand, a bucket
    rule): archiving went on `running`, `archived_until` moving, while
    nothing after the gap could be restored, for good; only VERIFY ARCHIVE
    said so. Now the next check finds the chain from the base to what was
    shipped broken and takes a new base: what is written after restores."""
    from server import archiving

    monkeypatch.setattr(archiving, "BASE_CHECK_S", 0.2)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    root = Path(cairn_config.backup_roots[0])
    for i in (1, 2, 3):
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
        await wait_shipped(client)
    [first] = await backups(client)
    names = [(s, segment.parse_name(s.name)) for s in segment_files(root)]
    full = [s for s, n in names if n is not None and not n.empty]
    assert len(full) >= 3, names
    full[len(full) // 2].unlink()  # one from the middle

    async def replaced() -> list[dict[str, Any]]:
        return [b for b in await backups(client) if b["backup_id"] != first["backup_id"]]

    [second] = await wait_for(replaced)
    assert second["label"] == "archive base"
    await ok(client, "INSERT INTO app.t VALUES (4)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    newest = max(points, key=lambda p: p["end_time"])
    assert newest["base_backup_id"] == second["backup_id"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{newest['end_time']}')")
    assert await all_ids(client, "r") == {1, 2, 3, 4}


def test_a_segment_past_the_largest_is_refused_by_its_size_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse file of 1.2 GB named as a segment (4 KB on disk) was read
    1 GiB deep, 1.1 GB of RSS, before it was found too large (VERIFY
    ARCHIVE, a RESTORE to a time). Now its size is asked first."""
    from storage.backup import Repository, resolve_target

    repo = Repository(resolve_target("arch", [str(tmp_path)], {}))
    repo.init()
    name = segment.SegmentName(0, 5, 1, 2)
    folder = tmp_path / "arch" / "archives" / "app" / "ar-00000000000000000000"
    folder.mkdir(parents=True)
    with open(folder / name.file, "wb") as f:
        f.truncate(store.MAX_SEGMENT_FILE + 1)
    opened: list[str] = []
    handler = type(repo.target.fs.handler)  # the no-follow file system's
    real = handler.open_input_stream

    def watch(self: Any, path: str, *a: Any, **k: Any) -> Any:
        opened.append(path)
        return real(self, path, *a, **k)

    monkeypatch.setattr(handler, "open_input_stream", watch)
    with pytest.raises(BackupInvalid, match="too large"):
        store.read_segment(repo, "app", "ar-00000000000000000000", name)
    assert opened == []
