"""ATTACH BACKUPS FROM 'target' on a fresh server after a disaster, SHOW BACKUP
of an encrypted backup WITH (encryption_passphrase = …), and SHOW BACKUP FOR
DATABASE (the seed's singular form of SHOW BACKUPS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from tests.helpers import err, fill, ok, rows


def fresh_config(tmp_path: Path) -> Config:
    """Another server's data dir, the same backup root: the first server is lost."""
    cfg = Config()
    cfg.pgwire.port = 0  # no PostgreSQL listener on the default port
    cfg.storage.data_dir = str(tmp_path / "data2")
    cfg.backup.roots = [str(tmp_path / "backups")]
    cfg.server.port = 0
    return cfg


async def test_attach_backups_adopts_a_target(
    client: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    await fill(client, files=2)
    (b1,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    await fill(client, ns="other", files=1)
    (b2,) = await rows(client, "BACKUP DATABASE other TO 'nightly' WITH (label = 'l')")
    (enc,) = await rows(client, "BACKUP DATABASE app TO 'nightly' "
                                "WITH (encryption_passphrase = 'correct horse')")
    (bad,) = await rows(client, "BACKUP DATABASE other TO 'nightly'")
    manifest = tmp_path / "backups" / "nightly" / "manifests" / f"{bad['backup_id']}.json"
    data = bytearray(manifest.read_bytes())
    data[len(data) // 2] ^= 0x01
    manifest.write_bytes(bytes(data))
    listed_before = await rows(client, "SHOW BACKUPS")

    fresh = await aiohttp_client(create_app(fresh_config(tmp_path)))
    message = await err(fresh, f"SHOW BACKUP '{b1['backup_id']}'", "NOT_FOUND")
    assert "name its target" in message
    await err(fresh, f"VERIFY BACKUP '{b1['backup_id']}'", "NOT_FOUND")

    attached = await rows(fresh, "ATTACH BACKUPS FROM 'nightly'")
    by_id = {r["backup_id"]: r for r in attached}
    assert set(by_id) == {b1["backup_id"], b2["backup_id"], enc["backup_id"], bad["backup_id"]}
    assert attached[-1]["backup_id"] == bad["backup_id"]  # damaged ones last
    assert by_id[bad["backup_id"]]["status"] == "damaged"
    assert "manifest" in by_id[bad["backup_id"]]["error"]
    for good in (b1, b2, enc):
        assert by_id[good["backup_id"]]["status"] == "attached"
        assert by_id[good["backup_id"]]["error"] is None
    assert by_id[enc["backup_id"]]["encrypted"] is True
    assert by_id[b2["backup_id"]]["namespace"] == "other"

    # The catalog now holds what the lost server's did, less the damaged one.
    catalog = await rows(fresh, "SHOW BACKUPS")
    expected = [r for r in listed_before if r["backup_id"] != bad["backup_id"]]
    for r in expected:  # an encrypted one's scope is sealed: unknown to ATTACH without its key
        r["scope"] = None if r["encrypted"] else r["scope"]
        # another server's (the lost one's) database: this one has no namespace
        # of that name (an encrypted one's owner is sealed too)
        r["own"] = None if r["encrypted"] else False
    assert catalog == expected
    in_system = await rows(fresh, "SELECT backup_id FROM system.backups ORDER BY backup_id")
    assert [r["backup_id"] for r in in_system] == sorted(r["backup_id"] for r in expected)

    # Without IN: SHOW BACKUP, VERIFY BACKUP, DROP BACKUP find the target.
    tables = await rows(fresh, f"SHOW BACKUP '{b1['backup_id']}'")
    assert [(t["table_name"], t["rows"]) for t in tables] == [("blobs", 200)]
    (verified,) = await rows(fresh, f"VERIFY BACKUP '{b1['backup_id']}'")
    assert verified["is_valid"] is True
    (checked,) = await rows(fresh, f"VERIFY BACKUP '{enc['backup_id']}' "
                                   "WITH (encryption_passphrase = 'correct horse')")
    assert checked["is_valid"] is True
    await ok(fresh, f"RESTORE DATABASE app FROM 'nightly' WITH (backup_id = '{b1['backup_id']}')")
    assert await rows(fresh, "SELECT count(*) AS n FROM app.blobs") == [{"n": 200}]

    again = await rows(fresh, "ATTACH BACKUPS FROM 'nightly'")
    assert [r["status"] for r in again] == ["already attached"] * 3 + ["damaged"]


async def test_attach_errors(client: Any, tmp_path: Path) -> None:
    await err(client, "ATTACH BACKUPS FROM 'nothing-here'", "NOT_FOUND")
    await err(client, "ATTACH BACKUPS FROM '../outside'", "PERMISSION_DENIED")
    assert not (tmp_path / "backups" / "nothing-here").exists()
    # Plain ATTACH is still DuckDB's, and refused.
    await err(client, "ATTACH 'x.db'", "PERMISSION_DENIED")


async def test_attach_reports_a_conflicting_id(client: Any, tmp_path: Path) -> None:
    await fill(client, files=1)
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    copy = tmp_path / "backups" / "copy"
    import shutil

    shutil.copytree(tmp_path / "backups" / "nightly", copy)
    (row,) = await rows(client, "ATTACH BACKUPS FROM 'copy'")
    assert row["status"] == "conflict" and str(tmp_path / "backups" / "nightly") in row["error"]
    (kept,) = await rows(
        client, f"SELECT target FROM system.backups WHERE backup_id = '{b['backup_id']}'")
    assert kept["target"] == str(tmp_path / "backups" / "nightly")
    # Dropping the copy's backup leaves the original's record: it was dropped by
    # id alone, and the backup still in 'nightly' was then NOT_FOUND by its id.
    await ok(client, f"DROP BACKUP '{b['backup_id']}' IN 'copy'")
    (kept,) = await rows(
        client, f"SELECT target FROM system.backups WHERE backup_id = '{b['backup_id']}'")
    assert kept["target"] == str(tmp_path / "backups" / "nightly")
    assert (await rows(client, f"VERIFY BACKUP '{b['backup_id']}'"))[0]["is_valid"] is True


async def test_drop_backup_clears_a_record_whose_manifest_is_gone(
        client: Any, tmp_path: Path) -> None:
    """The target is the truth: a record of a backup it no longer holds (a
    set that never finished, a manifest deleted by hand) was listed for good,
    and DROP BACKUP IF EXISTS answered 200 and kept it."""
    await fill(client, files=1)
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    (tmp_path / "backups" / "nightly" / "manifests" / f"{b['backup_id']}.json").unlink()
    await ok(client, f"DROP BACKUP IF EXISTS '{b['backup_id']}'")
    assert await rows(client, "SELECT backup_id FROM system.backups") == []


async def test_show_backup_of_an_encrypted_backup_takes_its_passphrase(client: Any) -> None:
    await fill(client, files=1)
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly' "
                              "WITH (encryption_passphrase = 's3cret')")
    message = await err(client, f"SHOW BACKUP '{b['backup_id']}'", "BACKUP_INVALID")
    assert "passphrase" in message
    await err(client, f"SHOW BACKUP '{b['backup_id']}' WITH (encryption_passphrase = 'nope')",
              "BACKUP_INVALID")
    tables = await rows(client, f"SHOW BACKUP '{b['backup_id']}' IN 'nightly' "
                                "WITH (encryption_passphrase = 's3cret')")
    assert [(t["table_name"], t["rows"], t["files"]) for t in tables] == [("blobs", 100, 1)]
    await err(client, f"SHOW BACKUP '{b['backup_id']}' WITH (passphrase = 's3cret')",
              "INVALID_ARGUMENT")
    # Not a job, and the secret is nowhere in system.jobs.
    statements = await rows(client, "SELECT statement FROM system.jobs")
    assert all("s3cret" not in (r["statement"] or "") for r in statements)


async def test_show_backup_for_database_is_show_backups(client: Any) -> None:
    await fill(client, files=1)
    await fill(client, ns="other", files=1)
    await ok(client, "BACKUP DATABASE app TO 'nightly'; BACKUP DATABASE other TO 'nightly';"
                     "BACKUP DATABASE app TO 'nightly'")
    plural = await rows(client, "SHOW BACKUPS FOR DATABASE app")
    assert len(plural) == 2
    assert await rows(client, "SHOW BACKUP FOR DATABASE app") == plural
    assert await rows(client, "show backup for database app in 'nightly' limit 1") == \
        (await rows(client, "SHOW BACKUPS FOR DATABASE app IN 'nightly'"))[:1]
