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

from .test_landed_own import _capture, _recover


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


async def test_a_crashed_sets_members_unread_at_start_up_stay(
        client: Any, liar: Liar, s3: S3Server, bucket: str) -> None:
    """Start-up's check of a crashed set's members (backup_own.py): a member
    the target would not let it read just then was taken for one not its own,
    and every member of a whole set went. Now the clean-up stays pending."""
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (id BIGINT); "
                     "CREATE NAMESPACE b; CREATE TABLE b.t (id BIGINT); "
                     "INSERT INTO a.t VALUES (1); INSERT INTO b.t VALUES (1)")
    seen = _capture(client, "backup.before_manifest")
    got = await rows(client, "BACKUP DATABASE a, b TO 'lie'")
    faults.clear()
    members = {r["backup_id"] for r in got}
    liar.rules = [Rule("GET", r"/manifests/.*\.b\.json", "denied"),
                  Rule("HEAD", r"/manifests/.*\.b\.json", "denied")]
    job = await _recover(client, seen[0], sorted(members))
    liar.rules = []
    assert "could not be done yet" in (job.error_message or ""), job.error_message
    kept = {k.split("/")[1].removesuffix(".json") for k in s3.keys(bucket, "c")
            if k.startswith("manifests/")}
    assert kept == members, kept
    cairn = state(client)
    assert await cairn.run(recovery.retry_pending, cairn.jobs) == 1
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    assert listed == members, listed


async def test_a_crashed_backups_manifest_unread_at_start_up_is_listed_later(
        client: Any, liar: Liar, s3: S3Server, bucket: str) -> None:
    """The same for one BACKUP: its manifest unread at start-up was taken for
    none, its lock kept for a resume: the whole backup stayed in the target,
    listed by no catalog (its lock released a day later, it never was)."""
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (id BIGINT); "
                     "INSERT INTO a.t VALUES (1); FLUSH TABLE a.t")
    seen = _capture(client, "backup.before_manifest")
    b1 = (await rows(client, "BACKUP DATABASE a TO 'lie'"))[0]["backup_id"]
    faults.clear()
    liar.rules = [Rule("GET", "/manifests/", "denied"), Rule("HEAD", "/manifests/", "denied")]
    job = await _recover(client, seen[0], [b1])
    liar.rules = []
    assert "could not be done yet" in (job.error_message or ""), job.error_message
    cairn = state(client)
    assert await cairn.run(recovery.retry_pending, cairn.jobs) == 1
    assert {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")} == {b1}
