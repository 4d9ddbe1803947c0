"""Which backups are bases of which archive (issue 13): a base's manifest names
its archive and the lsn of its cut, so two servers archiving a namespace of the
same name into one target (or a plain BACKUP by another server while one
archives) never make a restore to a time replay one database's changes on
another's backup."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from catalog.errors import BackupInvalid
from server.app import create_app
from server.config import Config
from storage.backup import schema
from storage.backup.manifest import canonical
from tests.helpers import ok, rows, sql

from .test_archiving import FAST, wait_shipped

POINTS = "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'"


async def two_servers(aiohttp_client: Any, cairn_config: Config,
                      tmp_path: Path) -> tuple[Any, Any]:
    """Two servers, each its own data directory, one backup root."""
    other = copy.deepcopy(cairn_config)
    other.storage.data_dir = str(tmp_path / "data_b")
    a = await aiohttp_client(create_app(cairn_config))
    b = await aiohttp_client(create_app(other))
    for client, who in ((a, "a"), (b, "b")):
        await ok(client, "CREATE NAMESPACE app; "
                         "CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                         f"INSERT INTO app.t VALUES (1, '{who}')")
    return a, b


async def content(client: Any, ns: str) -> set[tuple[int, str]]:
    return {(r["id"], r["who"]) for r in await rows(client, f"SELECT id, who FROM {ns}.t")}


def manifest_path(cfg: Config, backup_id: str) -> Path:
    return Path(cfg.backup.roots[0]) / "arch" / "manifests" / f"{backup_id}.json"


def header(cfg: Config, backup_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(manifest_path(cfg, backup_id).read_bytes())
    return doc


def rewrite(cfg: Config, backup_id: str, change: Any) -> None:
    """Change the stored header of a (zstd, unencrypted) manifest and reseal it
    with a valid checksum, as anyone who can write to the target can."""
    doc = header(cfg, backup_id)
    doc.pop("manifest_sha256")
    change(doc)
    doc["manifest_sha256"] = hashlib.sha256(canonical(doc)).hexdigest()
    manifest_path(cfg, backup_id).write_bytes(canonical(doc) + b"\n")


async def test_two_servers_archiving_one_target_never_mix(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """Both servers archive their own `app` into 'arch'; B stops first. Each
    window has only its own base, and a restore to the end of A's window is
    A's rows exactly (the old time matching took B's newer base and replayed
    A's changes on it)."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    await wait_shipped(a)
    await ok(b, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(b, "INSERT INTO app.t VALUES (2, 'b'), (3, 'b')")
    await wait_shipped(b)
    await ok(b, "STOP ARCHIVING DATABASE app")
    await ok(a, "INSERT INTO app.t VALUES (4, 'a')")
    await wait_shipped(a)
    await ok(a, "STOP ARCHIVING DATABASE app")

    [arch_a] = await rows(a, "SELECT * FROM system.archives")
    [arch_b] = await rows(b, "SELECT * FROM system.archives")
    points = await rows(a, POINTS)
    assert len(points) == 2
    assert all(p["base_backups"] == 1 for p in points), points
    by_archive = {p["archive_id"]: p for p in points}
    assert set(by_archive) == {header(cairn_config, p["base_backup_id"])["archive"]["id"]
                               for p in points}
    end_a = max(points, key=lambda p: p["end_time"])
    end_b = min(points, key=lambda p: p["end_time"])
    assert arch_a["archived_until"] >= end_a["end_time"] > arch_b["archived_until"] >= \
        end_b["end_time"]

    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end_a['end_time']}')")
    assert await content(a, "r") == {(1, "a"), (2, "a"), (4, "a")}
    # Inside both windows: this server's database as of then (test_archive_whose.py).
    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS s WITH (as_of = '{end_b['end_time']}')")
    assert await content(a, "s") == {(1, "a"), (2, "a")}
    report = (await rows(a, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]
    assert sorted(w["base_backup_id"] for w in report["windows"]) == \
        sorted(p["base_backup_id"] for p in points)


async def test_other_servers_plain_backup_is_no_base(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B takes a plain BACKUP of its own `app` into the target while A archives:
    it is no base of A's archive (its header says `archive: null`). A's own
    plain BACKUP meanwhile is one (it names A's archive and its cut)."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    await wait_shipped(a)
    await ok(b, "INSERT INTO app.t VALUES (7, 'b')")
    [theirs] = await rows(b, "BACKUP DATABASE app TO 'arch'")
    assert header(cairn_config, theirs["backup_id"])["archive"] is None
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    await wait_shipped(a)

    [point] = await rows(a, POINTS)
    assert point["base_backups"] == 1, point
    assert point["base_backup_id"] != theirs["backup_id"]
    [mine] = await rows(a, "BACKUP DATABASE app TO 'arch'")
    ref = header(cairn_config, mine["backup_id"])["archive"]
    assert ref["id"] == point["archive_id"] and ref["lsn"] > 0
    await ok(a, "INSERT INTO app.t VALUES (5, 'a')")
    await wait_shipped(a)
    await ok(a, "STOP ARCHIVING DATABASE app")
    [point] = await rows(a, POINTS)
    assert point["base_backups"] == 2, point

    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{point['end_time']}')")
    [job] = await rows(a, "SELECT * FROM system.jobs WHERE job_type = 'restore'")
    assert job["backup_id"] == mine["backup_id"]
    assert await content(a, "r") == {(1, "a"), (2, "a"), (3, "a"), (5, "a")}
    report = (await rows(a, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]


async def test_manifest_without_archive_field_is_matched_by_time(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """A base written before manifests named their archive (no `archive` key)
    is still a base by its time: existing targets still restore."""
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a')")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, POINTS)
    base = point["base_backup_id"]
    assert header(cairn_config, base)["archive"]["id"] == point["archive_id"]
    rewrite(cairn_config, base, lambda doc: doc.pop("archive"))
    assert "archive" not in header(cairn_config, base)
    assert await rows(client, POINTS) == [point]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                     f"(as_of = '{point['end_time']}')")
    assert await content(client, "r") == {(1, "a"), (2, "a")}
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]


GOOD_ID = "ar-" + "0" * 20
CRAFTED: list[Any] = [
    {"id": "ar-short", "lsn": 1}, {"id": GOOD_ID, "lsn": -1}, {"id": GOOD_ID, "lsn": 2**63},
    {"id": GOOD_ID, "lsn": True}, {"id": GOOD_ID, "lsn": "5"}, {"id": GOOD_ID},
    {"id": GOOD_ID, "lsn": 1, "extra": 1}, {"lsn": 1}, [], "ar-x", 7, True,
    {"id": GOOD_ID, "lsn": 1.5}, {"id": "../" + GOOD_ID, "lsn": 1},
]


async def test_crafted_archive_field_is_backup_invalid(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """A base whose `archive` is not an archive id and an lsn in range is
    BACKUP_INVALID when restored by id, and no base of any window (SHOW RESTORE
    POINTS, RESTORE as_of, VERIFY ARCHIVE answer, never a 500)."""
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a')")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, POINTS)
    base = point["base_backup_id"]
    original = manifest_path(cairn_config, base).read_bytes()
    for value in CRAFTED:
        rewrite(cairn_config, base, lambda doc, v=value: doc.update(archive=v))
        status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                                          f"(backup_id = '{base}')")
        assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", (value, body)
        assert "archive" in body["error"]["message"], (value, body)
        # no restorable window: the damaged base is listed with why (never hidden)
        assert [(p["base_backup_id"], p["error"] is not None)
                for p in await rows(client, POINTS)] == [(base, True)], value
        status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                                          f"(as_of = '{point['end_time']}')")
        assert status < 500 and body["status"] == "error", (value, body)
        report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
        assert report["windows"] == [], (value, report)  # (VERIFY BACKUP reports the base)
        manifest_path(cairn_config, base).write_bytes(original)
    assert await rows(client, POINTS) == [point]


def test_archive_field_types_and_ranges() -> None:
    """The header's `archive`, decoded alone: absent (older writer), null (no
    base) and a reference in range pass; anything else, or a reference on a
    backup of some tables, is BackupInvalid."""
    doc: dict[str, Any] = {
        "format": "cairn-backup", "format_version": 1, "features": [], "backup_id": "bk-1",
        "namespace": "app", "created_at": "2026-01-01T00:00:00.000Z",
        "snapshot_at": "2026-01-01T00:00:00.000Z", "label": None, "encrypted": False,
        "totals": {"tables": 0, "files": 0, "bytes": 0, "objects": 0, "object_bytes": 0,
                   "rows": 0, "bytes_written": 0},
        "objects": [],
    }
    assert schema.load_header(doc).archive is schema.msgspec.UNSET
    assert schema.load_header({**doc, "archive": None}).archive is None
    for lsn in (0, 2**63 - 1):
        ref = schema.load_header({**doc, "archive": {"id": GOOD_ID, "lsn": lsn}}).archive
        assert ref == schema.ArchiveRef(id=GOOD_ID, lsn=lsn)
    for value in CRAFTED:
        try:
            schema.load_header({**doc, "archive": value})
        except BackupInvalid as exc:
            assert "archive" in exc.message
        else:
            raise AssertionError(f"accepted archive = {value!r}")
    tables = {**doc, "scope": {"kind": "tables", "tables": ["t"]},
              "archive": {"id": GOOD_ID, "lsn": 1}}
    try:
        schema.load_header(tables)
    except BackupInvalid as exc:
        assert "archive" in exc.message
    else:
        raise AssertionError("a table backup was accepted as a base")


async def test_archive_in_a_manifest_body_is_refused(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """`archive` is public: moved from the header into a compressed body (with
    every checksum recomputed) it would be seen only by a reader of the body;
    the manifest is BACKUP_INVALID instead, and it is a base of nothing."""
    from storage.backup.codec import ZSTD, Form, decode_bytes, encode_bytes
    from storage.backup.crypto import binding_for_manifest

    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a')")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, POINTS)
    base = point["base_backup_id"]

    def into_body(doc: dict[str, Any]) -> None:
        desc, form, binding = doc["body"], Form("", ZSTD, None), binding_for_manifest(base)
        assert desc["codec"] == "zstd"
        plain = decode_bytes(base64.b64decode(desc["data"]), form, "body",
                             desc["plain_size"], binding)
        body = json.loads(plain)
        body["archive"] = doc.pop("archive")
        plain = canonical(body)
        desc.update(data=base64.b64encode(encode_bytes(plain, form, binding)).decode(),
                    plain_size=len(plain))

    rewrite(cairn_config, base, into_body)
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                                      f"(backup_id = '{base}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "body repeats ['archive']" in body["error"]["message"], body
    [damaged] = await rows(client, POINTS)  # no window: the base listed with why
    assert damaged["base_backup_id"] == base and "body repeats" in damaged["error"], damaged


async def test_namespace_dropped_and_created_again_while_archived(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """One server: DROP NAMESPACE app CASCADE and CREATE NAMESPACE app again
    under a running archive. The archive logs the drops, and a BACKUP of the new
    `app` is a base of the same archive at its own cut: restores before the drop
    are the old rows, after it the new ones, never both."""
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT);"
                     "INSERT INTO app.t VALUES (1, 'old'), (2, 'old')")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (3, 'old')")
    before_drop = (await wait_shipped(client))["archived_until"]
    await ok(client, "DROP NAMESPACE app CASCADE")
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT);"
                     "INSERT INTO app.t VALUES (1, 'new')")
    [second] = await rows(client, "BACKUP DATABASE app TO 'arch'")
    await ok(client, "INSERT INTO app.t VALUES (5, 'new')")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, POINTS)
    assert point["base_backups"] == 2
    assert header(cairn_config, second["backup_id"])["archive"]["id"] == point["archive_id"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{before_drop}')")
    assert await content(client, "r") == {(1, "old"), (2, "old"), (3, "old")}
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS s WITH "
                     f"(as_of = '{point['end_time']}')")
    assert await content(client, "s") == {(1, "new"), (5, "new")}
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report["errors"]
