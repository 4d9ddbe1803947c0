"""A restore holds the objects it reads (server/restore_hold.py): DROP BACKUP
or keep_last beside it no longer pulls them away mid-copy.

Before, a RESTORE of the oldest backup racing a scheduled BACKUP … keep_last
(or a DROP BACKUP) failed with BACKUP_INVALID "object … is missing": the prune
deleted the objects between two of the restore's fetches."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from server import faults
from server.app import create_app
from server.config import Config
from tests.e2e.test_kill import config_file, died, fill_process, job_of, post_ok
from tests.helpers import Gate, fill, job_row, ok, rows, sql, state, target_files


async def source(client: Any) -> dict[str, Any]:
    """app: a SHARED table (two files and a buffered row) and a USER table."""
    await fill(client, files=2)
    await ok(client, "INSERT INTO app.blobs VALUES (99999, 'buffered');"
                     "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, "INSERT INTO app.u VALUES (1, 'alice''s')", user="alice")
    return (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]


def referenced(target: Path) -> set[str]:
    return {o["oid"] for p in (target / "manifests").glob("*.json")
            for o in json.loads(p.read_text())["objects"]}


async def parked_restore(client: Any, text: str) -> tuple[asyncio.Task[Any], Gate]:
    """The restore stopped after its first file, before the second."""
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("restore.before_object", gate)
    task = asyncio.create_task(sql(client, text))
    await gate.reach()
    return task, gate


async def check_copy(client: Any) -> None:
    assert await rows(client, "SELECT count(*) AS n FROM copy.blobs") == [{"n": 201}]
    assert await rows(client, "SELECT v FROM copy.u", user="alice") == [{"v": "alice's"}]
    assert await rows(client, "SELECT count(*) AS n FROM copy.u", user="bob") == [{"n": 0}]


async def test_drop_backup_beside_its_restore(client: Any, tmp_path: Path) -> None:
    b0 = await source(client)
    task, gate = await parked_restore(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    dropped = await rows(client, f"DROP BACKUP '{b0['backup_id']}' IN 'nightly'")
    assert dropped[0]["backup_id"] == b0["backup_id"]
    target = tmp_path / "backups" / "nightly"
    assert target_files(target)["objects"], "the restore's objects were deleted under it"
    gate.opened.set()
    status, body = await task
    assert status == 200, body
    assert body["results"][0]["rows"][0]["rows"] == 202
    await check_copy(client)
    # The restore's lock is gone, and with it the dropped backup's objects.
    assert target_files(target) == {"manifests": set(), "objects": set(), "locks": set(),
                                    "prunes": set(), "tmp": set()}
    assert await rows(client, "SHOW BACKUPS IN 'nightly'") == []


async def test_keep_last_beside_a_restore_of_the_oldest(client: Any, tmp_path: Path) -> None:
    b0 = await source(client)
    await ok(client, "INSERT INTO app.blobs VALUES (-1, 'newer'); FLUSH TABLE app.blobs")
    text = f"RESTORE DATABASE app FROM 'nightly' AS copy WITH (backup_id = '{b0['backup_id']}')"
    task, gate = await parked_restore(client, text)
    b1 = (await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)"))[0]
    gate.opened.set()
    status, body = await task
    assert status == 200, body
    await check_copy(client)
    target = tmp_path / "backups" / "nightly"
    listed = [r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'nightly'")]
    assert listed == [b1["backup_id"]]
    held = target_files(target)
    assert held["locks"] == set() and held["objects"] == referenced(target)
    verified = (await rows(client, f"VERIFY BACKUP '{b1['backup_id']}' IN 'nightly'"))[0]
    assert verified["is_valid"], verified
    jobs = await rows(client, "SELECT job_type, status FROM system.jobs "
                              "WHERE job_type IN ('backup', 'restore') ORDER BY created_at")
    assert [j["status"] for j in jobs] == ["completed"] * 3


async def test_a_restore_without_a_drop_leaves_the_target_as_it_was(
        client: Any, tmp_path: Path) -> None:
    await source(client)
    target = tmp_path / "backups" / "nightly"
    before = target_files(target)
    await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    assert target_files(target) == before
    await check_copy(client)


def test_a_restore_that_died_holding_is_released_at_restart(
        tmp_path: Path, server_process: Any) -> None:
    config = config_file(tmp_path)
    srv = server_process(config=config, env={"CAIRN_FAULTS": "restore.before_install:kill"})
    fill_process(srv, "t", files=2)
    b0 = post_ok(srv, "BACKUP DATABASE app TO 'nightly'")["rows"][0]
    status, _ = srv.post("RESTORE DATABASE app FROM 'nightly' AS copy WITH (detached = true)")
    assert status == 200
    died(srv)
    target = tmp_path / "backups" / "nightly"
    assert len(target_files(target)["locks"]) == 1  # the restore's, left by the crash

    again = server_process(config=config)
    assert target_files(target)["locks"] == set()
    restore = post_ok(again, "SELECT job_id, status FROM system.jobs WHERE job_type = 'restore'")
    assert job_of(again, restore["rows"][0]["job_id"])["status"] == "failed"
    assert post_ok(again, "SHOW NAMESPACES")["rows"][0]["namespace"] == "app"
    assert len(post_ok(again, "SHOW NAMESPACES")["rows"]) == 1
    assert post_ok(again, f"VERIFY BACKUP '{b0['backup_id']}'")["rows"][0]["is_valid"]
    post_ok(again, "RESTORE DATABASE app FROM 'nightly' AS copy")
    assert post_ok(again, "SELECT count(*) AS n FROM copy.t")["rows"] == [{"n": 2}]


async def test_a_killed_restore_lets_go(client: Any, tmp_path: Path) -> None:
    """KILL JOB of a restore holding a backup dropped beside it: the lock goes,
    and the dropped backup's objects with it; no namespace appears."""
    b0 = await source(client)
    target = tmp_path / "backups" / "nightly"
    task, gate = await parked_restore(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    assert len(target_files(target)["locks"]) == 1
    await ok(client, f"DROP BACKUP '{b0['backup_id']}' IN 'nightly'")
    killed = await rows(client, f"KILL JOB '{gate.info['job_id']}'")
    assert killed[0]["status"] == "cancelled"
    status, body = await task
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    assert all(not part for part in target_files(target).values())
    assert [n["namespace"] for n in await rows(client, "SHOW NAMESPACES")] == ["app"]


async def test_verify_beside_a_drop_is_not_found(aiohttp_client: Any, cairn_config: Config,
                                                 tmp_path: Path) -> None:
    """VERIFY reads without holding (it writes nothing to the target): a backup
    dropped while it is read is NOT_FOUND, not damaged. Before, VERIFY answered
    BACKUP_INVALID "cannot read object …: [Errno 2] No such file or directory"."""
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=3)
    b0 = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]
    # Parked at its first file's contents (its object read, two more to read);
    # a throttle made it slow until 2026-12-07, and once a throttled VERIFY
    # read in a job process the drop's own process started after it ended.
    gate = Gate(state(client))
    faults.register("check.reading", gate)
    verify = asyncio.create_task(sql(client, f"VERIFY BACKUP '{b0['backup_id']}' IN 'nightly'"))
    try:
        while not gate.reached.is_set():
            await asyncio.sleep(0.02)
        found = await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'verify'")
        await ok(client, f"DROP BACKUP '{b0['backup_id']}' IN 'nightly'")
    finally:
        gate.opened.set()
        faults.clear()
    status, body = await verify
    assert status == 404 and body["error"]["code"] == "NOT_FOUND", body
    assert "was dropped" in body["error"]["message"]
    row = await job_row(client, found[0]["job_id"])
    assert row["status"] == "failed" and "was dropped" in row["error_message"]


async def test_restore_all_beside_a_keep_last_of_sets(client: Any, tmp_path: Path) -> None:
    """RESTORE ALL of an older backup set while BACKUP ALL … keep_last = 1 drops it."""
    await fill(client, files=2)
    await fill(client, ns="other", files=2)
    s0 = (await rows(client, "BACKUP ALL TO 'sets'"))[0]
    await ok(client, "INSERT INTO app.blobs VALUES (-1, 'later'); FLUSH TABLE app.blobs;"
                     "DROP TABLE other.blobs")  # not the namespace: a namespace dropped
    # and created again is another database, whose backups keep_last never drops
    await fill(client, ns="other", files=1)  # other rows: s0's objects of it are its own
    task, gate = await parked_restore(
        client, f"RESTORE ALL FROM 'sets' WITH (backup_id = '{s0['backup_id'].rsplit('.', 1)[0]}', "
                "replace = true)")
    s1 = (await rows(client, "BACKUP ALL TO 'sets' WITH (keep_last = 1)"))[0]
    gate.opened.set()
    status, body = await task
    assert status == 200, body
    assert await rows(client, "SELECT count(*) AS n, min(id) AS m FROM app.blobs") == [
        {"n": 200, "m": 0}]
    assert await rows(client, "SELECT count(*) AS n FROM other.blobs") == [{"n": 200}]
    target = tmp_path / "backups" / "sets"
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'sets'")}
    set_id = s1["backup_id"].rsplit(".", 1)[0]  # a row per member: '<set id>.app'
    assert listed == {f"{set_id}.app", f"{set_id}.other"}
    held = target_files(target)
    assert held["locks"] == set() and held["objects"] == referenced(target)
