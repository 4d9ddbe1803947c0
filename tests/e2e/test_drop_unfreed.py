"""DROP BACKUP and keep_last whose prune fails after the manifest went (the
target's `objects/` refuses deletes: an immutable folder, EPERM). The
catalog went on listing the dropped backup, the job said nothing of the
drop, a keep_last whose own backup landed had no result, and what the
dropped backup alone used was never freed. Now the catalog forgets it, the
error says it was dropped, and the next drop in the target frees every
object nothing uses.

As root no folder refuses a delete without chattr, so one file-system call
of the target (`NoFollowHandler.delete_file` of an object, `move` of a prune
marker into place) raises the PermissionError the kernel gives; the jobs run
in the server (`job_process = "off"`) so that it reaches them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from storage.backup.nofollow import NoFollowHandler
from tests.helpers import err, fill, ok, rows


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "off"
    return cairn_config


class Refusing:
    """Deletes in `objects/`, or markers moved into `prunes/`, refused while on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
        self.on = False
        real = NoFollowHandler.delete_file if folder == "objects" else NoFollowHandler.move

        def refuse(handler: NoFollowHandler, *paths: str) -> None:
            if self.on and f"/{folder}/" in paths[-1]:
                raise PermissionError(1, "Operation not permitted", paths[-1])
            real(handler, *paths)

        monkeypatch.setattr(NoFollowHandler, "delete_file" if folder == "objects" else "move",
                            refuse)


@pytest.fixture
def objects_refused(monkeypatch: pytest.MonkeyPatch) -> Iterator[Refusing]:
    yield Refusing(monkeypatch, "objects")


def objects_in(target: Path) -> set[str]:
    return {p.name for p in (target / "objects").rglob("*") if p.is_file()}


def used_by(target: Path, backup_id: str) -> set[str]:
    doc = json.loads((target / "manifests" / f"{backup_id}.json").read_bytes())
    return {o["oid"] for o in doc["objects"]}


async def backups_of_own_tables(client: Any, n: int) -> list[str]:
    """`n` backups of app, each holding a table (objects) no other holds."""
    ids = []
    for k in range(n):
        await fill(client, table=f"o{k}", files=1)
        ids.append((await ok(client, "BACKUP DATABASE app TO 'bk'"))[0]["rows"][0]["backup_id"])
        await ok(client, f"DROP TABLE app.o{k}")
    return ids


async def listed(client: Any) -> tuple[set[str], set[str]]:
    """(the catalog's backups, the target's)."""
    return ({r["backup_id"] for r in await rows(client, "SHOW BACKUPS")},
            {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'bk'")})


async def test_a_drop_whose_prune_fails_is_forgotten_and_freed_by_the_next_drop(
        client: Any, tmp_path: Path, objects_refused: Refusing) -> None:
    target = tmp_path / "backups" / "bk"
    b0, b1, b2 = await backups_of_own_tables(client, 3)
    only_b0 = used_by(target, b0) - used_by(target, b1) - used_by(target, b2)
    assert only_b0
    objects_refused.on = True
    message = await err(client, f"DROP BACKUP '{b0}'", "PERMISSION_DENIED")
    assert message.startswith(f"backup '{b0}' dropped; freeing its objects failed")
    assert "Operation not permitted" in message
    assert await listed(client) == ({b1, b2}, {b1, b2})  # the catalog listed b0 still
    job = (await rows(client, "SELECT status, error_message FROM system.jobs "
                              "WHERE job_type = 'drop_backup' ORDER BY job_id DESC LIMIT 1"))[0]
    assert job == {"status": "failed", "error_message": message}
    assert only_b0 <= objects_in(target)

    objects_refused.on = False
    keep = used_by(target, b2)
    dropped = (await ok(client, f"DROP BACKUP '{b1}'"))[0]["rows"][0]
    assert dropped["backup_id"] == b1
    assert objects_in(target) == keep  # b0's leftovers went with b1's own
    assert (await ok(client, f"VERIFY BACKUP '{b2}'"))[0]["rows"][0]["is_valid"] is True


async def test_a_keep_last_whose_prune_fails_says_its_backup_landed(
        client: Any, tmp_path: Path, objects_refused: Refusing) -> None:
    target = tmp_path / "backups" / "bk"
    b0, b1 = await backups_of_own_tables(client, 2)
    await fill(client, table="o2", files=1)
    objects_refused.on = True
    message = await err(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)",
                        "PERMISSION_DENIED")
    job = (await rows(client, "SELECT status, error_message, backup_id, result FROM system.jobs "
                              "WHERE job_type = 'backup' ORDER BY job_id DESC LIMIT 1"))[0]
    new = job["backup_id"]
    assert message.startswith(
        f"backup '{new}' is complete, but keep_last could not drop older ones: "
        f"backups '{b1}', '{b0}' dropped; freeing their objects failed"), message
    assert job["status"] == "failed" and job["error_message"] == message
    assert job["result"]["backup_id"] == new and job["result"]["status"] == "completed"
    assert await listed(client) == ({new}, {new})
    assert (await ok(client, f"VERIFY BACKUP '{new}'"))[0]["rows"][0]["is_valid"] is True

    objects_refused.on = False
    latest = (await ok(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)"))[0]["rows"][0]
    assert objects_in(target) == used_by(target, latest["backup_id"])
    assert await listed(client) == ({latest["backup_id"]}, {latest["backup_id"]})


async def test_a_drop_whose_prune_marker_cannot_be_written_removes_nothing(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest went before the marker was written: a marker refused left
    the backup gone from its target and listed in the catalog."""
    (b0,) = await backups_of_own_tables(client, 1)
    markers = Refusing(monkeypatch, "prunes")
    markers.on = True
    await err(client, f"DROP BACKUP '{b0}'", "PERMISSION_DENIED")
    assert await listed(client) == ({b0}, {b0})
    assert (await ok(client, f"VERIFY BACKUP '{b0}'"))[0]["rows"][0]["is_valid"] is True
    markers.on = False
    await ok(client, f"DROP BACKUP '{b0}'")
    assert await listed(client) == (set(), set())
    assert objects_in(tmp_path / "backups" / "bk") == set()
