"""DROP BACKUP and keep_last beside a damaged backup in the same target: the
prune after a drop cannot tell which objects the damaged one uses, so the
drop is refused before anything goes (it used to remove the manifest, then
fail: the backup gone, the statement an error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
