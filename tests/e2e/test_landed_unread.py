"""A BACKUP whose job process is lost after its manifest landed, its target
not answering (503, or 403 as here) just as the manifest is read back (server/backup_run.py
`_landed`): the job failed, as a loss before the manifest, and the whole
manifest stayed in the target, listed by no catalog, for good (round 24's
Left). Now the failed job's clean-up stays pending (tried at every start
and every minute, server/recovery.py) until the target answers: then the
manifest goes, and the objects only it used, as a failed backup keeps
nothing."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from server import faults, recovery
from server.app import create_app
from server.config import Config
from storage import jobproc
from tests.helpers import ok, rows, sql, state
from tests.storage_backup.s3liar import Liar, Rule
from tests.storage_backup.s3server import S3Server, running


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture
def liar(s3: S3Server) -> Iterator[Liar]:
    proxy = Liar(s3.port)
    yield proxy
    proxy.close()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.new_bucket()


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config, s3: S3Server, liar: Liar,
                 bucket: str) -> Any:
    target = s3.target(bucket, "c")
    cairn_config.backup.targets = {"lie": {**target, "endpoint": liar.endpoint}}
    cairn_config.jobs.job_process = "idle"
    return await aiohttp_client(create_app(cairn_config))


async def test_a_landed_manifest_unread_is_not_left_unlisted(
        client: Any, liar: Liar, s3: S3Server, bucket: str) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT); "
                     "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")

    def lose_unread(info: dict[str, Any]) -> None:
        liar.rules = [Rule("GET", "/manifests/", "denied"),
                      Rule("HEAD", "/manifests/", "denied")]
        for pid in jobproc.busy():
            os.kill(pid, signal.SIGKILL)

    faults.register("backup.after_manifest", lose_unread)
    faults.register("backup.landed_read", lambda info: liar.rules.clear())  # answers again
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie'")
    faults.clear()
    assert status == 503 and "clean-up could not be done yet" in body["error"]["message"], body
    (job,) = await rows(client, "SELECT job_id, status, backup_id, error_message "
                                "FROM system.jobs WHERE job_type = 'backup'")
    assert job["status"] == "failed", job
    in_target = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'lie'")}
    assert in_target == {job["backup_id"]}  # whole, but its job failed: until the retry
    # The minute's retry of pending clean-ups (start-up runs the same): the target
    # answers, the failed job's manifest goes, its lock and objects with it.
    cairn = state(client)
    assert await cairn.run(recovery.retry_pending, cairn.jobs) == 1
    assert await rows(client, "SHOW BACKUPS IN 'lie'") == []
    assert await rows(client, "SHOW BACKUPS") == []
    left = [k for k in s3.keys(bucket, "c") if k.split("/")[0] in ("manifests", "locks", "objects")]
    assert left == [], left
    (job,) = await rows(client, "SELECT status, error_message FROM system.jobs "
                                "WHERE job_type = 'backup'")
    assert job["status"] == "failed" and "could not be done yet" not in job["error_message"], job
