"""Backups on S3-compatible object storage, end to end: a real S3 server (moto)
on 127.0.0.1, reached through pyarrow's S3FileSystem exactly as in production.
Every statement behaves as against a directory: dedup, manifest written last,
SHOW BACKUPS IN, RESTORE, VERIFY, DROP BACKUP, disaster recovery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import ok, sql
from tests.storage_backup.s3server import S3Server, running

from .test_backup_restore import answers, backup, make_source


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture
def s3_config(cairn_config: Config, s3: S3Server, bucket: str) -> Config:
    cairn_config.backup.targets = {"offsite": s3.target(bucket, "cairn/offsite")}
    return cairn_config


@pytest.fixture
async def s3_client(aiohttp_client: Any, s3_config: Config) -> Any:
    return await aiohttp_client(create_app(s3_config))


def objects(keys: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in keys.items() if k.startswith("objects/")}


async def test_backup_restore_verify_drop_on_s3(
    s3_client: Any, s3: S3Server, bucket: str
) -> None:
    client = s3_client
    await make_source(client)
    await ok(client, "FLUSH ALL TABLES IN app")
    before = await answers(client, "app")
    first = await backup(client, "BACKUP DATABASE app TO 'offsite'")
    assert first["target"] == f"s3://{bucket}/cairn/offsite"
    assert first["status"] == "completed" and 0 < first["bytes_written"] <= first["bytes"]
    keys = s3.keys(bucket, "cairn/offsite")
    assert f"manifests/{first['backup_id']}.json" in keys and "config.json" in keys
    assert not any(k.startswith(("locks/", "tmp/")) for k in keys)  # nothing left in flight

    second = await backup(client, "BACKUP DATABASE app TO 'offsite'")
    assert second["bytes_written"] == 0 and second["bytes"] == first["bytes"]  # dedup
    assert objects(s3.keys(bucket, "cairn/offsite")) == objects(keys)

    listed = (await ok(client, "SHOW BACKUPS IN 'offsite'"))[0]["rows"]
    assert [r["backup_id"] for r in listed] == [second["backup_id"], first["backup_id"]]
    assert all(r["target"] == first["target"] and r["encrypted"] is False for r in listed)
    tables = (await ok(client, f"SHOW BACKUP '{first['backup_id']}'"))[0]["rows"]
    assert sorted(t["table_name"] for t in tables) == ["events", "items", "log", "notes"]

    restored = await backup(client, f"RESTORE DATABASE app FROM 'offsite' AS copy "
                                    f"WITH (backup_id = '{first['backup_id']}')")
    assert restored["backup_id"] == first["backup_id"]
    assert await answers(client, "copy") == before

    verified = await backup(client, f"VERIFY BACKUP '{first['backup_id']}' IN 'offsite'")
    assert verified["is_valid"] and verified["files_checked"] == len(objects(keys))

    # Flip one byte of one object through the S3 API: VERIFY names it, RESTORE refuses.
    victim = min(objects(keys))
    path = f"{bucket}/cairn/offsite/{victim}"
    data = bytearray(s3.read(path))
    data[len(data) // 2] ^= 0x01
    s3.write(path, bytes(data))
    damaged = await backup(client, f"VERIFY BACKUP '{first['backup_id']}' IN 'offsite'")
    assert damaged["is_valid"] is False
    assert [e.split(" is corrupt")[0] for e in damaged["errors"]] == [f"object {victim[11:]}"]
    status, body = await sql(client, "RESTORE DATABASE app FROM 'offsite' AS broken")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID"
    names = [r["namespace"] for r in (await ok(client, "SHOW NAMESPACES"))[0]["rows"]]
    assert sorted(names) == ["app", "copy"]

    # DROP BACKUP: the first goes, its objects stay (the second uses them all);
    # dropping the second too removes every object.
    assert (await backup(client, f"DROP BACKUP '{first['backup_id']}'"))["bytes_freed"] == 0
    freed = (await backup(client, f"DROP BACKUP '{second['backup_id']}' IN 'offsite'"))
    assert freed["bytes_freed"] == sum(objects(keys).values())
    left = s3.keys(bucket, "cairn/offsite")
    assert objects(left) == {} and not any(k.startswith("manifests/") for k in left)
    assert (await ok(client, "SHOW BACKUPS IN 'offsite'"))[0]["rows"] == []


async def test_uri_form_and_disaster_recovery_from_a_fresh_server(
    aiohttp_client: Any, s3_client: Any, s3_config: Config, bucket: str, tmp_path: Path
) -> None:
    """`s3://bucket/prefix` takes the credentials of the named target with the same
    bucket; a fresh server with the same target config sees and restores everything."""
    await make_source(s3_client)
    before = await answers(s3_client, "app")
    uri = f"s3://{bucket}/elsewhere/nightly"
    b = await backup(s3_client, f"BACKUP DATABASE app TO '{uri}' WITH (label = 'dr')")
    assert b["target"] == uri
    enc = await backup(s3_client, f"BACKUP DATABASE app TO '{uri}' "
                                  "WITH (encryption_passphrase = 'correct horse')")

    fresh_cfg = Config()
    fresh_cfg.storage.data_dir = str(tmp_path / "fresh-data")
    fresh_cfg.pgwire.port = 0
    fresh_cfg.backup.roots = [str(tmp_path / "fresh-backups")]
    fresh_cfg.backup.targets = s3_config.backup.targets
    fresh = await aiohttp_client(create_app(fresh_cfg))
    assert (await ok(fresh, "SHOW BACKUPS"))[0]["rows"] == []
    listed = (await ok(fresh, f"SHOW BACKUPS IN '{uri}'"))[0]["rows"]
    assert [(r["backup_id"], r["label"], r["encrypted"]) for r in listed] == [
        (enc["backup_id"], None, True), (b["backup_id"], "dr", False)]
    await ok(fresh, f"RESTORE DATABASE app FROM '{uri}' WITH (backup_id = '{b['backup_id']}')")
    assert await answers(fresh, "app") == before
    await ok(fresh, f"RESTORE DATABASE app FROM '{uri}' AS secret "
                    "WITH (encryption_passphrase = 'correct horse')")
    assert await answers(fresh, "secret") == before
    checked = await backup(fresh, f"VERIFY BACKUP '{enc['backup_id']}' IN '{uri}' "
                                  "WITH (encryption_passphrase = 'correct horse')")
    assert checked["is_valid"]


async def test_s3_errors(s3_client: Any, s3: S3Server, s3_config: Config) -> None:
    await ok(s3_client, "CREATE NAMESPACE app")
    status, body = await sql(s3_client, "SHOW BACKUPS IN 'offsite'")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"  # nothing written yet
    s3_config.backup.targets["nobucket"] = s3.target("no-such-bucket", "x")
    status, body = await sql(s3_client, "BACKUP DATABASE app TO 'nobucket'")
    assert 400 <= status < 500 and body["error"]["code"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    status, body = await sql(s3_client, "BACKUP DATABASE app TO 's3://a/x.tar'")
    assert status == 400 and "archives" in body["error"]["message"]


async def test_s3_target_nested_in_another_repository_is_refused(
    aiohttp_client: Any, cairn_config: Config, s3: S3Server, bucket: str
) -> None:
    """Issue 11.5 on object storage: a target inside another repository's internal
    prefix (or holding one in its own) is PERMISSION_DENIED, and nothing is written."""
    cairn_config.backup.targets = {
        "outer": s3.target(bucket, "repo"),
        "inner": s3.target(bucket, "repo/objects/x"),
        "holder": s3.target(bucket, "holder"),
        "held": s3.target(bucket, "holder/tmp"),
        "holder2": s3.target(bucket, "holder2"),
        "held2": s3.target(bucket, "holder2/manifests"),
        "beside": s3.target(bucket, "repo2/team"),
    }
    client = await aiohttp_client(create_app(cairn_config))
    await make_source(client)
    await backup(client, "BACKUP DATABASE app TO 'outer'")
    before = s3.keys(bucket)
    status, body = await sql(client, "BACKUP DATABASE app TO 'inner'")
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", body
    assert "internal folder 'objects'" in body["error"]["message"]
    assert s3.keys(bucket) == before  # nothing written inside the other repository

    await backup(client, "BACKUP DATABASE app TO 'held'")  # a repository first ...
    status, body = await sql(client, "BACKUP DATABASE app TO 'holder'")  # ... then around it
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", body
    assert "holds another backup repository in its internal folder 'tmp'" in \
        body["error"]["message"]
    assert "holder/config.json" not in s3.keys(bucket)
    # Around one in `manifests/`: refused as damage (manifests without a config).
    await backup(client, "BACKUP DATABASE app TO 'held2'")
    status, body = await sql(client, "BACKUP DATABASE app TO 'holder2'")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "holder2/config.json" not in s3.keys(bucket)

    await backup(client, "BACKUP DATABASE app TO 'beside'")  # plain nesting is fine
