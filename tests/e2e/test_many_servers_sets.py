"""A backup set still being written (its lock in the target, its members landing
one after another) beside keep_last, SHOW BACKUPS IN and RESTORE ALL of the
same or another server (docs/reliability.md section 7). keep_last once dropped
the member already written (the writer then added the other and answered
"completed" for a set that held half), and RESTORE ALL refused the newer
half-written set as incomplete instead of restoring the last whole one."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from server import faults
from server.app import create_app
from server.config import Config
from storage.backup import resolve_target
from storage.backup.repository import Repository
from tests.helpers import Gate, err, job_row, ok, rows, sql, state

SETUP = ("CREATE NAMESPACE a; CREATE NAMESPACE b; "
         "CREATE TABLE a.t (id INT PRIMARY KEY, v TEXT); "
         "CREATE TABLE b.t (id INT PRIMARY KEY, v TEXT); "
         "INSERT INTO a.t VALUES (1, 'first'); INSERT INTO b.t VALUES (1, 'first')")


async def dropped(client: Any, row: dict[str, Any]) -> list[str]:
    result = (await job_row(client, row["job_id"]))["result"]
    return list((json.loads(result) if isinstance(result, str) else result)["dropped"])


def set_of(got: list[dict[str, Any]]) -> str:
    return str(got[0]["backup_id"]).rsplit(".", 1)[0]


async def test_keep_last_and_restore_all_leave_a_set_being_written(client: Any) -> None:
    await ok(client, SETUP)
    old = set_of(await rows(client, "BACKUP DATABASE a, b TO 'shared'"))
    await ok(client, "UPDATE a.t SET v = 'second' WHERE id = 1")
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.between_manifests", gate)
    try:
        writing = asyncio.create_task(sql(client, "BACKUP DATABASE a, b TO 'shared'"))
        await gate.reach()  # member a is in the target, b not yet, the lock held
        listed = await rows(client, "SHOW BACKUPS IN 'shared'")
        landing = [r for r in listed if r["backup_id"] not in (f"{old}.a", f"{old}.b")]
        assert len(landing) == 1 and "being written" in landing[0]["error"], listed
        assert all(r["error"] is None for r in listed if r not in landing)
        # RESTORE ALL and RESTORE DATABASE a take neither the set being written
        # nor an older one in its stead (a lock put back made them restore the
        # set before, `completed`): UNAVAILABLE, retry; backup_id takes one.
        await err(client, "RESTORE ALL FROM 'shared' WITH (replace = true)", "UNAVAILABLE")
        await err(client, "RESTORE DATABASE a FROM 'shared' AS copy", "UNAVAILABLE")
        [one] = await rows(client, f"RESTORE DATABASE a FROM 'shared' AS copy "
                                   f"WITH (backup_id = '{old}.a')")
        assert await rows(client, "SELECT v FROM copy.t") == [{"v": "first"}]

        got = await rows(client, "BACKUP DATABASE a, b TO 'shared' WITH (keep_last = 1)")
        assert await dropped(client, got[0]) == [old]  # never the set being written
        gate.opened.set()
        status, body = await writing
    finally:
        gate.opened.set()
        faults.clear()
    assert status == 200, body
    landed = set_of(body["results"][0]["rows"])
    listed = {r["backup_id"]: r for r in await rows(client, "SHOW BACKUPS IN 'shared'")}
    assert set(listed) == {f"{landed}.a", f"{landed}.b", got[0]["backup_id"],
                           got[1]["backup_id"]}
    assert all(r["error"] is None for r in listed.values())


async def test_keep_last_leaves_a_whole_set_whose_lock_is_held(
        client: Any, tmp_path: Path) -> None:
    """Every member written, the lock not yet removed (or its writer died
    there): not a finished set (its job can still fail and remove it), for
    keep_last as for RESTORE ALL, which takes no older set in its stead."""
    await ok(client, SETUP)
    first = set_of(await rows(client, "BACKUP DATABASE a, b TO 'shared'"))
    second = set_of(await rows(client, "BACKUP DATABASE a, b TO 'shared'"))
    repo = Repository(resolve_target("shared", [str(tmp_path / "backups")], {}))
    with repo.lock(second):
        await err(client, "RESTORE ALL FROM 'shared' WITH (replace = true)", "UNAVAILABLE")
        got = await rows(client, "BACKUP DATABASE a, b TO 'shared' WITH (keep_last = 1)")
        assert await dropped(client, got[0]) == [first]
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'shared'")}
    assert listed == {f"{second}.a", f"{second}.b", got[0]["backup_id"], got[1]["backup_id"]}


async def test_keep_last_of_a_set_never_drops_another_servers_set(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    for server in (a, b):
        await ok(server, SETUP)
    theirs = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    mine = set_of(await rows(b, "BACKUP DATABASE a, b TO 'shared'"))
    got = await rows(b, "BACKUP DATABASE a, b TO 'shared' WITH (keep_last = 1)")
    assert await dropped(b, got[0]) == [mine]
    listed = {r["backup_id"] for r in await rows(a, "SHOW BACKUPS IN 'shared'")}
    assert {f"{theirs}.a", f"{theirs}.b"} <= listed


async def test_restore_all_takes_this_servers_set(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A's RESTORE ALL took B's newer set of B's own a and b (other databases of
    the same names); a fresh server takes the newest of any."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    fresh = copy.deepcopy(cairn_config)
    fresh.storage.data_dir = str(tmp_path / "data_c")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    for server, who in ((a, "a"), (b, "b")):
        await ok(server, SETUP + f"; UPDATE a.t SET v = '{who}' WHERE id = 1")
    mine = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    theirs = set_of(await rows(b, "BACKUP DATABASE a, b TO 'shared'"))
    [got, _] = await rows(a, "RESTORE ALL FROM 'shared' WITH (replace = true)")
    assert got["backup_id"] == f"{mine}.a"
    assert await rows(a, "SELECT v FROM a.t") == [{"v": "a"}]
    c = await aiohttp_client(create_app(fresh))
    [got, _] = await rows(c, "RESTORE ALL FROM 'shared'")
    assert got["backup_id"] == f"{theirs}.a"


async def test_restore_all_to_a_time_takes_this_servers_own_set_first(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B restored A's set (a drill copy), wrote rows and took a set of its own;
    A then took a newer set. B's RESTORE ALL to a time after both took A's
    (the lineage rule): A's rows over B's acknowledged ones, `completed`. Now
    B's own set by then; before it, the set B was restored from; without
    as_of, A's newest still (a drill server refreshed from production)."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    await ok(a, SETUP + "; UPDATE a.t SET v = 'a' WHERE id = 1")
    first = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    await ok(b, "RESTORE ALL FROM 'shared'")
    await ok(b, "INSERT INTO a.t VALUES (2, 'b')")
    mine = set_of(await rows(b, "BACKUP DATABASE a, b TO 'shared'"))
    await ok(a, "INSERT INTO a.t VALUES (2, 'a')")
    theirs = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    at = {r["backup_id"]: r["snapshot_at"] for r in await rows(a, "SHOW BACKUPS IN 'shared'")}
    await ok(b, "INSERT INTO a.t VALUES (3, 'b')")

    [got, _] = await rows(b, f"RESTORE ALL FROM 'shared' WITH "
                             f"(as_of = '{at[f'{theirs}.a']}', replace = true)")
    assert got["backup_id"] == f"{mine}.a"
    assert await rows(b, "SELECT id, v FROM a.t ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    [got, _] = await rows(b, f"RESTORE ALL FROM 'shared' WITH "
                             f"(as_of = '{at[f'{first}.a']}', replace = true)")
    assert got["backup_id"] == f"{first}.a"
    [got, _] = await rows(b, "RESTORE ALL FROM 'shared' WITH (replace = true)")
    assert got["backup_id"] == f"{theirs}.a"


async def test_restore_all_to_a_time_after_a_refresh_is_the_set_restored(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's namespaces were refreshed from A's set S1 (RESTORE ALL); A then wrote
    a row and took S2. B's RESTORE ALL to a time after S2, with no set of its
    own since the refresh, took S2 (A's row, never B's); now S1. Without a set
    restored from to be had (the refresh was of one member alone, by RESTORE
    DATABASE), NOT_FOUND, never A's newer set."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    await ok(a, SETUP)
    first = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    await ok(b, "RESTORE ALL FROM 'shared'")
    await ok(a, "INSERT INTO a.t VALUES (2, 'a')")
    newer = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    at = {r["backup_id"]: r["snapshot_at"] for r in await rows(a, "SHOW BACKUPS IN 'shared'")}
    t = at[f"{newer}.a"]
    [got, _] = await rows(b, f"RESTORE ALL FROM 'shared' WITH (as_of = '{t}', replace = true)")
    assert got["backup_id"] == f"{first}.a"
    assert await rows(b, "SELECT id FROM a.t") == [{"id": 1}]
    # `a` refreshed from A's newer member alone: no set holds B's `b` and `a` then.
    await ok(b, f"RESTORE DATABASE a FROM 'shared' WITH (replace = true, "
                f"backup_id = '{newer}.a')")
    [now] = await rows(b, "SELECT strftime(now()::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%fZ') AS t")
    message = await err(b, f"RESTORE ALL FROM 'shared' WITH (as_of = '{now['t']}', "
                           "replace = true)", "NOT_FOUND")
    assert "holds the state then" in message, message
    assert await rows(b, "SELECT id FROM a.t ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_restore_all_to_a_time_with_a_namespace_not_here_keeps_the_lineage(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B has only `a`, refreshed from A's member S1.a; A's sets hold a and b. A
    wrote a row and took S2. B's RESTORE ALL to a time after S2 took S2 as a
    server without such a set takes any (A's row in B's `a`, never B's); now
    S1, B's `a` as it had it and A's `b` new."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    await ok(a, SETUP)
    first = set_of(await rows(a, "BACKUP DATABASE a, b TO 'shared'"))
    await ok(b, f"RESTORE DATABASE a FROM 'shared' WITH (backup_id = '{first}.a')")
    await ok(a, "INSERT INTO a.t VALUES (2, 'a')")
    await rows(a, "BACKUP DATABASE a, b TO 'shared'")
    [now] = await rows(b, "SELECT strftime(now()::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%fZ') AS t")
    [got, _] = await rows(b, f"RESTORE ALL FROM 'shared' WITH (as_of = '{now['t']}', "
                             "replace = true)")
    assert got["backup_id"] == f"{first}.a"
    assert await rows(b, "SELECT id FROM a.t") == [{"id": 1}]
