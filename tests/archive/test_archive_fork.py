"""An archive another writer shipped into with this server's catalog record: a
server brought back from an older copy of its data directory, or a copy of the
data directory started beside the original (one backup root). The archiver
never writes into it again: it goes on in a new archive from a new base, says
why in last_error, and the old window stays restorable where it is consistent.
SHOW RESTORE POINTS, VERIFY ARCHIVE and RESTORE as_of agree on an archive
whose segments overlap."""

from __future__ import annotations

import asyncio
import copy
import shutil
from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from tests.helpers import ok, rows, sql

from .test_archive_guards import all_ids
from .test_archiving import wait_shipped


async def newest_point(client: Any) -> dict[str, Any]:
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    return max(points, key=lambda p: p["end_time"])


async def archive_ids(client: Any) -> set[str]:
    return {p["archive_id"] for p in
            await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")}


async def moved_on(client: Any, old: set[str], timeout: float = 15.0) -> tuple[str, str]:
    """Wait for a window in an archive not in `old`; (its id, last_error)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        new = await archive_ids(client) - old
        if new:
            shown = await wait_shipped(client)
            return new.pop(), shown["last_error"]
        assert asyncio.get_running_loop().time() < deadline, await archive_ids(client)
        await asyncio.sleep(0.05)


async def test_a_server_back_from_an_older_copy_starts_a_new_archive(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """Before, it resumed after its recorded end and shipped ranges the target
    already held: VERIFY invalid, every RESTORE as_of of the window 422 (even
    times that restored before), SHOW ARCHIVES running with no error."""
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [first] = await archive_ids(client)
    await client.close()
    data = Path(cairn_config.storage.data_dir)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(data, snapshot)  # last night's copy of the data directory
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "INSERT INTO app.t VALUES (3)")
    await wait_shipped(client)
    early = await newest_point(client)
    await client.close()
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)  # the disk is lost: back from the copy
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "INSERT INTO app.t VALUES (30)")
    new, why = await moved_on(client, {first})
    assert "past what this server shipped" in (why or ""), why
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert {p["archive_id"] for p in points} == {first, new}
    assert all(p["error"] is None for p in points), points
    # the old window still restores what was shipped before the roll-back
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS old WITH "
                     f"(as_of = '{early['end_time']}')")
    assert await all_ids(client, "old") == {1, 2, 3}
    newest = await newest_point(client)
    assert newest["archive_id"] == new
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS new WITH "
                     f"(as_of = '{newest['end_time']}')")
    assert await all_ids(client, "new") == {1, 2, 30}
    await ok(client, "STOP ARCHIVING DATABASE app")


async def test_a_copy_of_the_data_directory_never_ships_into_the_original_archive(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """Before, the copy resumed the original's archive at start-up and both
    shipped into it: interleaved segments of two databases."""
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await wait_shipped(client)
    [first] = await archive_ids(client)
    await client.close()
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "clone")
    shutil.copytree(cairn_config.storage.data_dir, other.storage.data_dir)
    a = await aiohttp_client(create_app(cairn_config))
    await ok(a, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(a)  # the original ships past the copy's record
    b = await aiohttp_client(create_app(other))
    await ok(b, "INSERT INTO app.t VALUES (900)")
    new, why = await moved_on(b, {first})
    assert "past what this server shipped" in (why or ""), why
    await ok(a, "INSERT INTO app.t VALUES (3)")
    shown_a = await wait_shipped(a)
    assert shown_a["last_error"] is None, shown_a
    report = (await rows(a, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]
    mine = [p for p in await rows(a, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
            if p["archive_id"] == first]
    [window] = mine
    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS back WITH "
                f"(as_of = '{window['end_time']}')")
    assert await all_ids(a, "back") == {1, 2, 3}
    for c in (a, b):
        await ok(c, "STOP ARCHIVING DATABASE app")


async def test_overlapping_segments_are_one_error_in_listing_verify_and_restore(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """SHOW RESTORE POINTS said `error` null for a window whose RESTORE refused
    (422) and VERIFY ARCHIVE called invalid (overlapping segments)."""
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [first] = await archive_ids(client)
    folder = Path(cairn_config.backup.roots[0]) / "arch" / "archives" / "app" / first
    segs = sorted(folder.glob("*.seg"))
    last = segs[-1]
    a, b, c, d = last.name.removesuffix(".seg").split("-")
    # a second writer's segment over the same start, ending later
    twin = folder / f"{a}-{int(b) + 1:020d}-{c}-{int(d) + 1:017d}.seg"
    shutil.copy(last, twin)
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    [window] = [p for p in points if p["archive_id"] == first]
    assert window["error"] is not None and "overlaps" in window["error"], window
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS x WITH "
                                     f"(as_of = '{window['start_time']}')")
    assert status == 422, body
