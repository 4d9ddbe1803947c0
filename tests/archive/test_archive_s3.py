"""Continuous archiving to an S3 target: a real S3-compatible server (moto's
ThreadedMotoServer on 127.0.0.1) reached through pyarrow's S3FileSystem, as in
production. START ARCHIVING ships segments there, SHOW RESTORE POINTS and
VERIFY ARCHIVE read them back, RESTORE … as_of restores from them exactly, and
a damaged segment there is refused like a damaged local one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import err, ok, rows, sql
from tests.storage_backup.s3server import S3Server, running

from .test_archiving import wait_shipped

PREFIX = "cairn/offsite"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture
async def s3_client(aiohttp_client: Any, cairn_config: Config, s3: S3Server,
                    bucket: str) -> Any:
    cairn_config.backup.targets = {"offsite": s3.target(bucket, PREFIX)}
    return await aiohttp_client(create_app(cairn_config))


def segments(s3: S3Server, bucket: str) -> dict[str, int]:
    return {k: v for k, v in s3.keys(bucket, PREFIX).items()
            if k.startswith("archives/app/") and k.endswith(".seg")}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


async def test_archive_restore_verify_on_s3(s3_client: Any, s3: S3Server, bucket: str) -> None:
    client = s3_client
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'base')")
    row = (await rows(client, "START ARCHIVING DATABASE app TO 'offsite' "
                              "WITH (interval = '100ms')"))[0]
    assert row["status"] == "running" and row["target"] == f"s3://{bucket}/{PREFIX}"
    await ok(client, "INSERT INTO app.t VALUES (2, 'two'), (3, 'three')")
    await wait_shipped(client)
    middle = now_iso()
    time.sleep(0.01)
    await ok(client, "UPDATE app.t SET v = 'TWO' WHERE id = 2; DELETE FROM app.t WHERE id = 3;"
                     "ALTER TABLE app.t ADD COLUMN w INT DEFAULT 7;"
                     "INSERT INTO app.t VALUES (4, 'four', 40)")
    shown = await wait_shipped(client)
    assert shown["last_error"] is None and shown["bytes"] > 0
    stored = segments(s3, bucket)
    assert stored and sum(stored.values()) == shown["bytes"]
    assert not [k for k in s3.keys(bucket, PREFIX) if k.startswith("tmp/")]
    await ok(client, "STOP ARCHIVING DATABASE app")

    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'offsite'")
    assert len(points) == 1
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'offsite'"))[0]
    assert report["is_valid"] is True and report["errors"] == [], report
    assert report["changes"] == 5 and report["segments_checked"] == len(segments(s3, bucket))

    await ok(client, f"RESTORE DATABASE app FROM 'offsite' AS mid WITH (as_of = '{middle}')")
    assert await rows(client, "SELECT id, v FROM mid.t ORDER BY id") == [
        {"id": 1, "v": "base"}, {"id": 2, "v": "two"}, {"id": 3, "v": "three"}]
    end = points[0]["end_time"]
    await ok(client, f"RESTORE DATABASE app FROM 'offsite' AS last WITH (as_of = '{end}')")
    assert await rows(client, "SELECT id, v, w FROM last.t ORDER BY id") == await rows(
        client, "SELECT id, v, w FROM app.t ORDER BY id")

    # a flipped byte in a segment on S3: VERIFY says invalid, RESTORE installs nothing
    key = max(segments(s3, bucket), key=lambda k: segments(s3, bucket)[k])
    path = f"{bucket}/{PREFIX}/{key}"
    data = bytearray(s3.read(path))
    data[-5] ^= 0x04
    s3.write(path, bytes(data))
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'offsite'"))[0]
    assert report["is_valid"] is False and key.rsplit("/", 1)[1] in report["errors"][0]
    await err(client, f"RESTORE DATABASE app FROM 'offsite' AS broken WITH (as_of = '{end}')",
              "BACKUP_INVALID")
    assert "broken" not in {n["namespace"] for n in await rows(client, "SHOW NAMESPACES")}


async def test_a_bucket_prefix_emptied_while_archiving_is_set_up_again(
        s3_client: Any, s3: S3Server, bucket: str) -> None:
    """Every object under the target's prefix deleted (an expiry rule) while
    archiving runs: before, the archiver wrote segments and, at its 60 s
    check, a base there without config.json, and every reader refused the
    target as damaged while SHOW ARCHIVES said running. Now the next segment
    finds config.json gone and a new base sets the target up again."""
    client = s3_client
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "START ARCHIVING DATABASE app TO 'offsite' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [first] = await rows(client, "SHOW BACKUPS FOR DATABASE app IN 'offsite'")
    s3.fs().delete_dir_contents(f"{bucket}/{PREFIX}")  # directory markers too
    assert s3.keys(bucket, PREFIX) == {}
    await ok(client, "INSERT INTO app.t VALUES (3)")
    deadline = time.monotonic() + 20
    while True:  # SHOW BACKUPS is NOT_FOUND while nothing is under the prefix
        status, body = await sql(client, "SHOW BACKUPS FOR DATABASE app IN 'offsite'")
        listed = body["results"][0]["rows"] if status == 200 else []
        if listed and listed[0]["backup_id"] != first["backup_id"]:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    assert "config.json" in s3.keys(bucket, PREFIX)
    await ok(client, "INSERT INTO app.t VALUES (4)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'offsite'"))[0]
    assert report["is_valid"] is True, report["errors"]
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'offsite'")
    await ok(client, f"RESTORE DATABASE app FROM 'offsite' AS r WITH "
                     f"(as_of = '{point['end_time']}')")
    assert {r["id"] for r in await rows(client, "SELECT id FROM r.t")} == {1, 2, 3, 4}
