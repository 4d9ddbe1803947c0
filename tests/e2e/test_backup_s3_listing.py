"""SHOW BACKUPS IN an S3 target holding many manifests (planted junk among them),
over a link with a round trip like a real object store's: a real moto server
behind a TCP relay that holds every request 40 ms."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import ok
from tests.storage_backup.s3server import Relay, S3Server, running

DELAY = 0.04


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture
def relay(s3: S3Server) -> Iterator[Relay]:
    r = Relay(s3.port, delay=DELAY)
    yield r
    r.close()


async def test_a_listing_of_many_manifests_reads_each_once_and_not_one_by_one(
    aiohttp_client: Any, cairn_config: Config, s3: S3Server, relay: Relay
) -> None:
    bucket = s3.new_bucket()
    target = s3.target(bucket, "cairn/offsite")
    target["endpoint"] = f"http://127.0.0.1:{relay.port}"
    cairn_config.backup.targets = {"offsite": target}
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    real = (await ok(client, "BACKUP DATABASE app TO 'offsite'"))[0]["rows"][0]
    for i in range(60):  # junk named as backups: each is listed as damaged
        s3.write(f"{bucket}/cairn/offsite/manifests/junk-{i:03d}.json", b"x")

    started = time.monotonic()
    rows = (await ok(client, "SHOW BACKUPS IN 'offsite'"))[0]["rows"]
    took = time.monotonic() - started
    assert len(rows) == 61 and sum(r["error"] is not None for r in rows) == 60
    assert [r["backup_id"] for r in rows if r["error"] is None] == [real["backup_id"]]
    assert sorted(r["backup_id"] for r in rows if r["error"])[0] == "junk-000"
    # One by one and twice each (HEAD + GET per read), 60 junk manifests took
    # 60 x 4 x 40 ms and more (~11 s); read once, 16 at a time, well under 4 s.
    assert took < 4, took
    await ok(client, "INSERT INTO app.t VALUES (2)")
