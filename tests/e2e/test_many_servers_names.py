"""Two servers, one target, each with its own namespace `app` (docs/reliability.md
section 7): different databases of one name. keep_last drops, and a RESTORE
without backup_id takes, only backups of this server's namespace: B's
keep_last once dropped A's backups (and with A's archive base, every archived
change of A's running archive), and A's RESTORE of `app` restored B's rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.config import Config
from tests.archive.test_archive_lineage import two_servers
from tests.archive.test_archiving import FAST, wait_shipped
from tests.helpers import err, job_row, ok, reseal, rows


async def dropped(client: Any, row: dict[str, Any]) -> list[str]:
    """What a BACKUP's keep_last dropped (its job's result)."""
    result = (await job_row(client, row["job_id"]))["result"]
    return list((json.loads(result) if isinstance(result, str) else result)["dropped"])


async def whose(client: Any, ns: str) -> set[str]:
    return {r["who"] for r in await rows(client, f"SELECT who FROM {ns}.t")}


async def test_keep_last_never_drops_another_servers_backups(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    [mine] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    [first] = await rows(b, "BACKUP DATABASE app TO 'shared'")
    [second] = await rows(b, "BACKUP DATABASE app TO 'shared' WITH (keep_last = 1)")
    assert await dropped(b, second) == [first["backup_id"]]  # B's own older one, never A's
    listed = {r["backup_id"] for r in await rows(a, "SHOW BACKUPS IN 'shared'")}
    assert listed == {mine["backup_id"], second["backup_id"]}
    [verified] = await rows(a, f"VERIFY BACKUP '{mine['backup_id']}' IN 'shared'")
    assert verified["is_valid"] is True, verified

    # A's keep_last counts only A's backups: B's newer one is not one of them.
    [again] = await rows(a, "BACKUP DATABASE app TO 'shared' WITH (keep_last = 2)")
    assert await dropped(a, again) == []
    [third] = await rows(a, "BACKUP DATABASE app TO 'shared' WITH (keep_last = 2)")
    assert await dropped(a, third) == [mine["backup_id"]]
    listed = {r["backup_id"] for r in await rows(b, "SHOW BACKUPS IN 'shared'")}
    assert listed == {again["backup_id"], third["backup_id"], second["backup_id"]}


async def test_restore_takes_this_servers_namespace(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    [mine] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    [theirs] = await rows(b, "BACKUP DATABASE app TO 'shared'")  # newer, B's database
    [got] = await rows(a, "RESTORE DATABASE app FROM 'shared' AS copy")
    assert got["backup_id"] == mine["backup_id"]
    assert await whose(a, "copy") == {"a"}
    await ok(a, "RESTORE DATABASE app FROM 'shared' WITH (replace = true)")
    assert await whose(a, "app") == {"a"}

    # Only B's backups of `app` left: A refuses, naming them; backup_id takes one.
    await ok(a, f"DROP BACKUP '{mine['backup_id']}' IN 'shared'")
    message = await err(a, "RESTORE DATABASE app FROM 'shared' AS other", "NOT_FOUND")
    assert "another server" in message and theirs["backup_id"] in message, message
    await ok(a, f"RESTORE DATABASE app FROM 'shared' AS other "
                f"WITH (backup_id = '{theirs['backup_id']}')")
    assert await whose(a, "other") == {"b"}

    # A server without a namespace `app` takes the newest of any (a fresh server
    # restoring another's), as does A once its own `app` is dropped.
    await ok(a, "DROP NAMESPACE app CASCADE")
    await ok(a, "RESTORE DATABASE app FROM 'shared'")
    assert await whose(a, "app") == {"b"}


async def test_manifest_without_server_is_matched_by_namespace_creation(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A manifest written before manifests named their server: this server's
    when its namespace was created at the same instant, another's otherwise."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    plain = "WITH (compression = 'none')"
    [mine] = await rows(a, f"BACKUP DATABASE app TO 'shared' {plain}")
    [theirs] = await rows(b, f"BACKUP DATABASE app TO 'shared' {plain}")
    root = Path(cairn_config.backup.roots[0]) / "shared" / "manifests"
    for row in (mine, theirs):
        reseal(root / f"{row['backup_id']}.json",
               lambda doc: doc["namespace_record"].pop("server"))
    [got] = await rows(a, "RESTORE DATABASE app FROM 'shared' AS copy")
    assert got["backup_id"] == mine["backup_id"]
    [newer] = await rows(a, "BACKUP DATABASE app TO 'shared' WITH (keep_last = 1)")
    assert await dropped(a, newer) == [mine["backup_id"]]
    listed = {r["backup_id"] for r in await rows(b, "SHOW BACKUPS IN 'shared'")}
    assert listed == {newer["backup_id"], theirs["backup_id"]}


async def test_keep_last_leaves_another_servers_archive(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A archives its `app`; B's keep_last of its own `app` into the same target
    once dropped A's base, and the archive clean-up then every segment of A's
    running archive: no restore point left."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    for i in range(2, 5):
        await ok(a, f"INSERT INTO app.t VALUES ({i}, 'a')")
        await wait_shipped(a)
    points = await rows(a, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len(points) == 1 and points[0]["segments"] >= 1, points
    await ok(b, "BACKUP DATABASE app TO 'arch'")
    [last] = await rows(b, "BACKUP DATABASE app TO 'arch' WITH (keep_last = 1)")
    gone = await dropped(b, last)
    assert len(gone) == 1 and points[0]["base_backup_id"] not in gone, gone
    assert await rows(a, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'") == points
    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{points[0]['end_time']}')")
    assert {r["id"] for r in await rows(a, "SELECT id FROM r.t")} == {1, 2, 3, 4}
    await ok(a, "STOP ARCHIVING DATABASE app")


async def test_the_server_restored_from_never_takes_its_copys_backups(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A drill: B restores A's `app` and backs its copy up into the same target.
    A's RESTORE without backup_id once took B's newer backup (the lineage rule
    matched the shared creation time both ways): B's rows in production, A's
    acknowledged ones gone. B takes A's backups only up to the one it restored."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    [mine] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    await ok(b, f"RESTORE DATABASE app FROM 'shared' WITH (replace = true, "
                f"backup_id = '{mine['backup_id']}')")
    await ok(b, "INSERT INTO app.t VALUES (2, 'drill')")
    [theirs] = await rows(b, "BACKUP DATABASE app TO 'shared'")
    [got] = await rows(a, "RESTORE DATABASE app FROM 'shared' AS copy")
    assert got["backup_id"] == mine["backup_id"]
    assert await whose(a, "copy") == {"a"}

    # B's lineage: its own newest; without it, A's newest (a drill server
    # refreshed from production), even one A took after B's restore.
    [later] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    [got] = await rows(b, "RESTORE DATABASE app FROM 'shared' AS c1")
    assert got["backup_id"] == later["backup_id"]  # newer than B's own
    await ok(b, f"DROP BACKUP '{later['backup_id']}' IN 'shared'")
    [got] = await rows(b, "RESTORE DATABASE app FROM 'shared' AS c2")
    assert got["backup_id"] == theirs["backup_id"]
    # A restore of B's own backup keeps where its database came from.
    await ok(b, f"RESTORE DATABASE app FROM 'shared' WITH (replace = true, "
                f"backup_id = '{theirs['backup_id']}')")
    await ok(b, f"DROP BACKUP '{theirs['backup_id']}' IN 'shared'")
    [got] = await rows(b, "RESTORE DATABASE app FROM 'shared' AS c3")
    assert got["backup_id"] == mine["backup_id"]
