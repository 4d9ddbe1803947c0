"""RESTORE … as_of before the restores a namespace's record keeps: never rows the
namespace did not hold then (found by the twenty-first round's regress attacker,
each case a restore that completed with another server's rows). A restore of
another database, or restores past the 16 kept, make the record forget (`lost`):
a time before what it keeps is this server's own backups after that, or NOT_FOUND;
a first restore that replaced a namespace of this server's (`over`) leaves the
time before it to this server's own backups (storage/backup/restored.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from storage.backup.restored import KEPT
from tests.archive.test_archive_lineage import content, two_servers
from tests.archive.test_archive_refresh import backup, now, restored_id
from tests.helpers import ok, sql


async def _as_of(client: Any, t: str, name: str) -> set[tuple[int, str]] | None:
    """What RESTORE … AS `name` to `t` gave, or None when it was refused."""
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS {name} "
                                      f"WITH (as_of = '{t}')")
    if body.get("status") != "success":
        assert status == 404 and body["error"]["code"] == "NOT_FOUND", body
        return None
    return await content(client, name)


async def test_a_time_before_the_restores_kept_is_never_a_later_backup(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    mids, held = {}, {}
    for i in range(2, KEPT + 4):  # past the restores a record keeps
        await ok(a, f"INSERT INTO app.t VALUES ({i}, 'a')")
        x, _ = await backup(a)
        mids[i], held[i] = await now(b), await content(b, "app")
        await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    for i in (2, 3, KEPT + 3):
        got = await _as_of(b, mids[i], f"c{i}")
        assert got is None or got == held[i], (i, got, held[i])
    assert await _as_of(b, mids[KEPT + 3], "kept") == held[KEPT + 3]  # still kept: exact


async def test_a_time_before_a_servers_own_restore_is_its_own_history(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A's `app` to B, B wrote and backed up, then A restored B's backup back: a
    time before A's restore gave B's backup, while A held its own rows."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    xa1, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{xa1}')")
    await ok(b, "INSERT INTO app.t VALUES (102, 'b')")
    zb1, _ = await backup(b)
    await ok(a, "INSERT INTO app.t VALUES (104, 'a')")
    t, held = await now(a), await content(a, "app")
    await ok(a, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{zb1}')")
    got = await _as_of(a, t, "c")
    assert got is None or not got - held, (got, held)
    assert await restored_id(a, f"RESTORE DATABASE app FROM 'arch' AS d WITH (as_of = "
                                f"'{await now(a)}')") == zb1


async def test_a_restore_of_another_database_forgets_what_came_before(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_c")
    c = await aiohttp_client(create_app(other))
    await ok(c, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                "INSERT INTO app.t VALUES (1, 'c')")
    x1, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x1}')")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    await backup(a)
    t1, held1 = await now(b), await content(b, "app")
    w1, _ = await backup(c)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{w1}')")
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    x3, _ = await backup(a)
    t2, held2 = await now(b), await content(b, "app")
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x3}')")
    for i, (t, held) in enumerate(((t1, held1), (t2, held2))):
        got = await _as_of(b, t, f"q{i}")
        assert got is None or not got - held, (t, got, held)


async def test_a_rollback_over_a_refresh_never_gives_the_time_before_it_its_rows(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    z0, _ = await backup(b)  # B's own database, (1, 'b')
    x1, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x1}')")
    await ok(b, "INSERT INTO app.t VALUES (5, 'b')")
    t, held = await now(b), await content(b, "app")  # {(1, 'a'), (5, 'b')}
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{z0}')")
    got = await _as_of(b, t, "q")
    assert got is None or not got - held, (got, held)


async def test_a_time_before_a_refresh_of_a_namespace_of_its_own_is_its_own_backup(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    z0, _ = await backup(b)
    x1, _ = await backup(a)
    t, held = await now(b), await content(b, "app")
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x1}')")
    assert await restored_id(b, f"RESTORE DATABASE app FROM 'arch' AS q WITH (as_of = '{t}')") \
        == z0
    assert await content(b, "q") == held
