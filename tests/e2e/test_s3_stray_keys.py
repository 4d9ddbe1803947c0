"""Keys below a manifest's name on S3 (`manifests/<id>.json/junk`: what a
"folder" made in a console or any tool looks like). The listing held that
backup twice: SHOW BACKUPS IN showed it twice, and keep_last = 3 with three
distinct backups counted it twice and dropped the oldest, which it had to keep.
A real moto server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import err, ok, rows
from tests.storage_backup.s3server import S3Server, running


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


async def test_keys_below_a_manifests_name_are_no_backup_and_never_count_twice(
    aiohttp_client: Any, cairn_config: Config, s3: S3Server
) -> None:
    bucket = s3.new_bucket()
    cairn_config.backup.targets = {"off": s3.target(bucket, "t")}
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE p; CREATE TABLE p.t (id BIGINT); INSERT INTO p.t VALUES (1)")
    (a1,) = await rows(client, "BACKUP DATABASE p TO 'off'")
    (a2,) = await rows(client, "BACKUP DATABASE p TO 'off'")
    manifests = f"{bucket}/t/manifests"
    s3.write(f"{manifests}/{a2['backup_id']}.json/junk", b"x")
    s3.fs().create_dir(f"{manifests}/{a1['backup_id']}.json")  # a folder's marker key
    # Keys below a name with no manifest of its own: no backup at all, not a
    # damaged one (the listing takes it for none, as VERIFY does).
    ghost = "bk-00000000000000000000000000"
    s3.write(f"{manifests}/{ghost}.json/junk", b"x")

    listed = await rows(client, "SHOW BACKUPS IN 'off'")
    assert sorted((r["backup_id"], r["error"]) for r in listed) == sorted(
        [(a1["backup_id"], None), (a2["backup_id"], None)])

    await err(client, f"VERIFY BACKUP '{ghost}' IN 'off'", "NOT_FOUND")
    (skipped,) = await ok(client, f"DROP BACKUP IF EXISTS '{ghost}' IN 'off'")
    assert "does not exist, skipped" in skipped["message"], skipped

    (a3,) = await rows(client, "BACKUP DATABASE p TO 'off' WITH (keep_last = 3)")
    left = {k.split("/")[0] for k in s3.keys(bucket, "t/manifests")}
    assert {f"{b['backup_id']}.json" for b in (a1, a2, a3)} <= left, left
    assert len(await rows(client, "SHOW BACKUPS IN 'off'")) == 3

    # keep_last = 2 counts each backup once: only the oldest goes.
    (a4,) = await rows(client, "BACKUP DATABASE p TO 'off' WITH (keep_last = 2)")
    listed = await rows(client, "SHOW BACKUPS IN 'off'")
    assert sorted(r["backup_id"] for r in listed) == sorted(
        [a3["backup_id"], a4["backup_id"]])
    assert len(await rows(client, f"RESTORE DATABASE p FROM 'off' AS r WITH "
                                   f"(backup_id = '{a3['backup_id']}')")) == 1
    assert await rows(client, "SELECT id FROM r.t") == [{"id": 1}]
