"""A copy of a server's data directory (cp -a, a VM or volume snapshot)
started beside it with the same backup root keeps its server id: its backups
name the original's server too. keep_last on either drops only backups its own
catalog records (system.backups), and a RESTORE without backup_id whose
newest backup of the namespace names this server but is not in its catalog
refuses (ALREADY_EXISTS naming it) instead of restoring the copy's rows.
Before, the copy's keep_last = 1 dropped the original's backups and the
original's RESTORE restored the copy's rows."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from tests.helpers import err, ok, rows


async def ids(client: Any) -> set[int]:
    return {r["id"] for r in await rows(client, "SELECT id FROM app.t")}


async def test_a_copy_of_the_data_directory_never_drops_or_gives_its_backups(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a = await aiohttp_client(create_app(cairn_config))
    await ok(a, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                "INSERT INTO app.t VALUES (1)")
    [first] = await rows(a, "BACKUP DATABASE app TO 'nightly'")
    await a.close()
    clone = copy.deepcopy(cairn_config)
    clone.storage.data_dir = str(tmp_path / "clone")
    shutil.copytree(cairn_config.storage.data_dir, clone.storage.data_dir)
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(clone))
    await ok(a, "INSERT INTO app.t VALUES (2)")
    [second] = await rows(a, "BACKUP DATABASE app TO 'nightly'")
    await ok(b, "DELETE FROM app.t; INSERT INTO app.t VALUES (900)")
    [junk] = await rows(b, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    # A backup naming its server that its catalog does not record: the copy drops nothing
    listed = {r["backup_id"] for r in await rows(a, "SHOW BACKUPS FOR DATABASE app IN 'nightly'")}
    assert {first["backup_id"], second["backup_id"], junk["backup_id"]} <= listed, listed
    message = await err(a, "RESTORE DATABASE app FROM 'nightly' AS back", "ALREADY_EXISTS")
    assert junk["backup_id"] in message and "backup_id" in message, message
    await ok(a, f"RESTORE DATABASE app FROM 'nightly' AS back WITH "
                f"(backup_id = '{second['backup_id']}')")
    assert {r["id"] for r in await rows(a, "SELECT id FROM back.t")} == {1, 2}
    # A's keep_last neither counts nor drops it, and rotates its own
    [third] = await rows(a, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    listed = {r["backup_id"] for r in await rows(a, "SHOW BACKUPS FOR DATABASE app IN 'nightly'")}
    assert listed == {junk["backup_id"], third["backup_id"]}, listed
    await ok(a, f"DROP BACKUP '{junk['backup_id']}' IN 'nightly'")
    [fourth] = await rows(a, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    listed = {r["backup_id"] for r in await rows(a, "SHOW BACKUPS FOR DATABASE app IN 'nightly'")}
    assert listed == {fourth["backup_id"]}, listed
    # A's newest is its own again: RESTORE without backup_id takes it
    await ok(a, "RESTORE DATABASE app FROM 'nightly' AS again")
    assert {r["id"] for r in await rows(a, "SELECT id FROM again.t")} == {1, 2}


async def test_a_copy_never_drops_the_backups_recorded_before_it_was_copied(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A copy's catalog records the original's backups from before the copy:
    its keep_last (an inherited KEEP LAST schedule) dropped them all."""
    a = await aiohttp_client(create_app(cairn_config))
    await ok(a, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                "INSERT INTO app.t VALUES (1)")
    before = [(await rows(a, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
              for _ in range(2)]
    await a.close()
    clone = copy.deepcopy(cairn_config)
    clone.storage.data_dir = str(tmp_path / "clone")
    shutil.copytree(cairn_config.storage.data_dir, clone.storage.data_dir)
    b = await aiohttp_client(create_app(clone))
    [junk] = await rows(b, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    [again] = await rows(b, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    listed = {r["backup_id"] for r in await rows(b, "SHOW BACKUPS FOR DATABASE app IN 'nightly'")}
    # its own older one goes; the original's stay
    assert listed == {*before, again["backup_id"]}, (listed, junk)
