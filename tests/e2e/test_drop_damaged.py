"""DROP BACKUP and keep_last beside a damaged backup in the same target: the
prune after a drop cannot tell which objects the damaged one uses, so the
drop is refused before anything goes (it used to remove the manifest, then
fail: the backup gone, the statement an error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.backups import NOT_READ_SHOWN
from tests.helpers import fill, ok, sql


async def _damage(root: Path, backup_id: str) -> None:
    path = root / "nightly" / "manifests" / f"{backup_id}.json"
    path.write_bytes(path.read_bytes()[:-30])


async def test_drop_backup_beside_a_damaged_one_is_refused_whole(
        client: Any, tmp_path: Path) -> None:
    await fill(client, files=1)
    first = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]["backup_id"]
    second = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]["backup_id"]
    await _damage(tmp_path / "backups", first)
    _, body = await sql(client, f"DROP BACKUP '{second}' IN 'nightly'")
    assert body["status"] == "error" and body["error"]["code"] == "BACKUP_INVALID", body
    assert "cannot tell which objects are in use" in body["error"]["message"]
    assert (tmp_path / "backups" / "nightly" / "manifests" / f"{second}.json").exists()
    checked = (await ok(client, f"VERIFY BACKUP '{second}'"))[0]["rows"][0]
    assert checked["is_valid"] is True


async def test_keep_last_beside_a_damaged_one_drops_nothing_and_says_the_backup_is_whole(
        client: Any, tmp_path: Path) -> None:
    await fill(client, files=1)
    ids = [(await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]["backup_id"]
           for _ in range(2)]
    await _damage(tmp_path / "backups", ids[0])
    _, body = await sql(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    assert body["status"] == "error" and body["error"]["code"] == "BACKUP_INVALID", body
    message = body["error"]["message"]
    assert "is complete" in message and "nothing was dropped" in message
    manifests = {p.stem for p in (tmp_path / "backups" / "nightly" / "manifests").iterdir()}
    assert set(ids) < manifests and len(manifests) == 3  # the new one landed, none dropped
    (new,) = manifests - set(ids)
    assert (await ok(client, f"VERIFY BACKUP '{new}'"))[0]["rows"][0]["is_valid"] is True


async def test_keep_last_names_a_bounded_number_of_manifests_it_could_not_read(
        client: Any, tmp_path: Path) -> None:
    """keep_last's `result.not_read` named every unreadable manifest that may be
    the namespace's: a target holding thousands of junk files named like
    manifests (ids of up to 128 characters) made the job's row, written at
    each step and in every answer of system.jobs, grow by each of them. It
    names the first NOT_READ_SHOWN now, and `not_read_count` says how many."""
    await fill(client, files=1)
    await ok(client, "CREATE NAMESPACE other; BACKUP DATABASE other TO 'nightly'")  # not app's
    manifests = tmp_path / "backups" / "nightly" / "manifests"
    for i in range(130):
        (manifests / f"bk-junk{i:03d}-{'x' * 110}.json").write_bytes(b"junk\n")
    await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    job = (await ok(client, "SELECT status, result FROM system.jobs WHERE job_type = 'backup' "
                            "ORDER BY created_at"))[0]["rows"][-1]
    result = job["result"]
    result = json.loads(result) if isinstance(result, str) else result
    assert job["status"] == "completed" and result["dropped"] == [], job
    assert result["not_read_count"] == 130, result
    assert len(result["not_read"]) == NOT_READ_SHOWN < 130
    assert all(i.startswith("bk-junk") for i in result["not_read"])
