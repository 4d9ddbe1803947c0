"""Portable archives over HTTP: BACKUP … TO 'name.tar' / 'name.tar.zst' writes one
file holding one backup; every reading statement takes it with the same checks;
nothing temporary is left behind, whatever happens."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from server.app import create_app
from server.config import Config
from tests.helpers import ok, sql

from .test_backup_restore import answers, backup, make_source


def members(archive: Path) -> dict[str, bytes]:
    """Every member of an archive, in order, with its bytes."""
    raw = archive.read_bytes()
    if archive.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar:
            assert m.isreg() and m.mtime == 0 and m.uid == m.gid == 0 and m.mode == 0o644
            assert m.uname == m.gname == ""
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
    return out


def scratch(tmp_path: Path) -> list[Path]:
    """What the server left in its tmp/ (must be nothing between statements)."""
    return list((tmp_path / "data" / "tmp").iterdir())


async def expect(client: Any, text: str, code: str, fragment: str = "") -> dict[str, Any]:
    _, body = await sql(client, text)
    assert body["status"] == "error" and body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body
    return body["error"]


@pytest.mark.parametrize("name", ["app.tar", "sub/app.tar.zst"])
async def test_archive_round_trip(client: Any, tmp_path: Path, name: str) -> None:
    await make_source(client)
    before = await answers(client, "app")
    b = await backup(client, f"BACKUP DATABASE app TO '{name}' WITH (label = 'portable')")
    archive = tmp_path / "backups" / name
    assert b["target"] == str(archive) and archive.is_file()
    assert scratch(tmp_path) == [] and [p.name for p in archive.parent.iterdir()] == [archive.name]
    names = list(members(archive))
    assert names == sorted(names) and names[0] == "config.json"
    assert f"manifests/{b['backup_id']}.json" in names
    assert not any(n.startswith(("locks/", "tmp/")) for n in names)

    listed = (await ok(client, f"SHOW BACKUPS IN '{name}'"))[0]["rows"]
    assert [(r["backup_id"], r["label"], r["target"]) for r in listed] == [
        (b["backup_id"], "portable", str(archive))]
    tables = (await ok(client, f"SHOW BACKUP '{b['backup_id']}' IN '{name}'"))[0]["rows"]
    assert sorted(t["table_name"] for t in tables) == ["events", "items", "log", "notes"]
    verified = await backup(client, f"VERIFY BACKUP '{b['backup_id']}'")
    assert verified["is_valid"] and verified["files_checked"] >= 4
    await backup(client, f"RESTORE DATABASE app FROM '{name}' AS copy")
    assert await answers(client, "copy") == before
    assert scratch(tmp_path) == []

    # One backup per archive: a second one into the same name is refused.
    await expect(client, f"BACKUP DATABASE app TO '{name}'", "ALREADY_EXISTS", str(archive))
    assert scratch(tmp_path) == [] and archive.is_file()

    dropped = await backup(client, f"DROP BACKUP '{b['backup_id']}'")
    assert dropped["bytes_freed"] > 0 and not archive.exists()
    await expect(client, f"SHOW BACKUPS IN '{name}'", "NOT_FOUND", "does not exist")


async def test_encrypted_archive_and_a_fresh_server(
    aiohttp_client: Any, client: Any, tmp_path: Path
) -> None:
    await make_source(client)
    before = await answers(client, "app")
    key = "WITH (encryption_passphrase = 'archive secret')"
    b = await backup(client, f"BACKUP DATABASE app TO 'sealed.tar.zst' {key}")
    fresh_cfg = Config()
    fresh_cfg.pgwire.port = 0  # no PostgreSQL listener on the default port
    fresh_cfg.storage.data_dir = str(tmp_path / "fresh-data")
    fresh_cfg.backup.roots = [str(tmp_path / "backups")]
    fresh = await aiohttp_client(create_app(fresh_cfg))
    listed = (await ok(fresh, "SHOW BACKUPS IN 'sealed.tar.zst'"))[0]["rows"]
    assert [(r["backup_id"], r["encrypted"]) for r in listed] == [(b["backup_id"], True)]
    await expect(fresh, "RESTORE DATABASE app FROM 'sealed.tar.zst'", "BACKUP_INVALID",
                 "encryption_passphrase")
    await expect(fresh, f"VERIFY BACKUP '{b['backup_id']}' IN 'sealed.tar.zst'",
                 "BACKUP_INVALID", "encryption_passphrase")
    await ok(fresh, f"RESTORE DATABASE app FROM 'sealed.tar.zst' {key}")
    assert await answers(fresh, "app") == before
    checked = await backup(fresh, f"VERIFY BACKUP '{b['backup_id']}' IN 'sealed.tar.zst' {key}")
    assert checked["is_valid"]
    assert list((tmp_path / "fresh-data" / "tmp").iterdir()) == []


async def test_same_content_gives_the_same_archive_but_for_ids_and_times(
    client: Any, tmp_path: Path
) -> None:
    await make_source(client)
    await ok(client, "FLUSH ALL TABLES IN app")
    await backup(client, "BACKUP DATABASE app TO 'one.tar'")
    await backup(client, "BACKUP DATABASE app TO 'two.tar'")
    one, two = (members(tmp_path / "backups" / n) for n in ("one.tar", "two.tar"))
    assert len(one) == len(two)
    same = {n: d for n, d in one.items() if not n.startswith(("manifests/", "config.json"))}
    assert same and all(two[n] == d for n, d in same.items())  # every object, byte for byte


@pytest.mark.parametrize("damage", ["flip_object", "truncate", "garbage"])
async def test_damaged_archive_is_refused_and_leaves_nothing(
    client: Any, tmp_path: Path, damage: str
) -> None:
    await make_source(client)
    b = await backup(client, "BACKUP DATABASE app TO 'app.tar'")
    archive = tmp_path / "backups" / "app.tar"
    data = bytearray(archive.read_bytes())
    if damage == "flip_object":
        obj = next(n for n in members(archive) if n.startswith("objects/"))
        content = members(archive)[obj]
        at = bytes(data).index(content) + len(content) // 2
        data[at] ^= 0x01
        archive.write_bytes(bytes(data))
        report = await backup(client, f"VERIFY BACKUP '{b['backup_id']}'")
        assert report["is_valid"] is False and obj.rsplit("/", 1)[1] in report["errors"][0]
    elif damage == "truncate":
        archive.write_bytes(bytes(data[: len(data) // 2]))
    else:
        archive.write_bytes(b"not a tar archive at all" * 100)
    await expect(client, "RESTORE DATABASE app FROM 'app.tar' AS copy", "BACKUP_INVALID")
    names = [r["namespace"] for r in (await ok(client, "SHOW NAMESPACES"))[0]["rows"]]
    assert names == ["app"]
    assert scratch(tmp_path) == []
    restored = list((tmp_path / "data" / "files").rglob("*.parquet"))
    source = (await ok(client, "SELECT sum(files) AS n FROM system.tables"))[0]["rows"][0]["n"]
    assert len(restored) == source
