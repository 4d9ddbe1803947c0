"""KILL JOB that lands after a job's point of no return. A BACKUP killed in
its keep_last (its manifest landed, its result recorded) ended `cancelled`:
KILL answered 200 `cancelled`, the waiting client 409 CANCELLED, although the
backup was listed, valid and restorable. A DROP BACKUP whose prune was
stopped after its manifest went said `cancelled` too, its backup gone. Now
the kill stops only that tail: the job ends `failed` (a BACKUP keeping its
`backup_id` and result), KILL answers `failed` with the job's message saying
what stays, and the waiting statement gets 503 UNAVAILABLE with it.

The jobs run in the server (`job_process = "off"`) so that the KILL reaches
the work's own checks exactly: the fault point `backup.before_record` (the
manifest is in the target) parks the job until the KILL, and keep_last's
first check meets it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage import jobproc
from tests.helpers import Gate, fill, job_row, ok, rows, sql, state


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "off"
    return cairn_config


async def backups_of(client: Any, where: str = "IN 'bk'") -> set[str]:
    return {r["backup_id"] for r in await rows(client, f"SHOW BACKUPS {where}")}


async def killed_in_tail(client: Any, statement: str, gate: Gate) -> tuple[str, Any, Any]:
    """`statement` run until `gate` parks its job, then KILL JOB: the job id,
    KILL's answer and the statement's."""
    waiting = asyncio.create_task(sql(client, statement))
    job_id = (await gate.reach())["job_id"]
    killed = await sql(client, f"KILL JOB '{job_id}'")
    return job_id, killed, await asyncio.wait_for(waiting, 60)


async def test_a_kill_in_keep_last_leaves_a_failed_job_and_its_backup(client: Any) -> None:
    await fill(client, table="a", files=1)
    older = [(await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"]
             for _ in range(2)]
    await ok(client, "INSERT INTO app.a VALUES (900000, 'last')")
    gate = Gate(state(client))  # goes on once the KILL came: keep_last meets it
    faults.register("backup.before_record", gate)
    job_id, (k_status, k_body), (status, body) = await killed_in_tail(
        client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)", gate)

    job = await job_row(client, job_id)
    backup_id = job["backup_id"]
    message = (f"backup '{backup_id}' is complete, but keep_last could not drop older ones: "
               "KILL JOB stopped it")
    assert (job["status"], job["error_message"]) == ("failed", message), job
    assert job["result"]["backup_id"] == backup_id, job
    assert k_status == 200, k_body
    assert k_body["results"][0]["rows"] == [{"job_id": job_id, "status": "failed"}], k_body
    assert k_body["results"][0]["message"] == f"Job '{job_id}' failed: {message}", k_body
    assert (status, body["error"]["code"], body["error"]["message"]) == (
        503, "UNAVAILABLE", message), body
    # What the answers say is what the target holds: the backup, and the older ones.
    assert await backups_of(client) == {backup_id, *older}
    assert await backups_of(client, "") == {backup_id, *older}
    verified = (await rows(client, f"VERIFY BACKUP '{backup_id}'"))[0]
    assert verified["is_valid"], verified
    await ok(client, f"RESTORE DATABASE app FROM 'bk' AS back WITH (backup_id = '{backup_id}')")
    assert (await rows(client, "SELECT data FROM back.a WHERE id = 900000")) == [{"data": "last"}]
    # A later keep_last does the drops this one did not.
    await ok(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)")
    assert len(await backups_of(client)) == 1


async def test_a_kill_in_a_sets_keep_last_leaves_a_failed_job_and_its_set(client: Any) -> None:
    await fill(client, table="a", files=1)
    await fill(client, ns="other", table="b", files=1)
    await ok(client, "BACKUP DATABASE app, other TO 'bk'")
    before = await backups_of(client)
    gate = Gate(state(client))
    faults.register("backup.before_record", gate)
    job_id, (k_status, k_body), (status, body) = await killed_in_tail(
        client, "BACKUP DATABASE app, other TO 'bk' WITH (keep_last = 1)", gate)

    job = await job_row(client, job_id)
    message = (f"backup set '{job['backup_id']}' is complete, but keep_last could not drop "
               "older ones: KILL JOB stopped it")
    assert (job["status"], job["error_message"]) == ("failed", message), job
    members = {m["backup_id"] for m in job["result"]["namespaces"]}
    assert len(members) == 2, job
    assert (k_status, k_body["results"][0]["rows"]) == (
        200, [{"job_id": job_id, "status": "failed"}]), k_body
    assert (status, body["error"]["code"], body["error"]["message"]) == (
        503, "UNAVAILABLE", message), body
    assert await backups_of(client) == before | members
    for member in members:
        assert (await rows(client, f"VERIFY BACKUP '{member}'"))[0]["is_valid"]


class Killing(Gate):
    """At `prune.before_delete` (the drop's manifest gone, its objects not yet
    freed: no check of the cancel there): once the job is killed, raise what
    the server raises when it kills a job process that did not stop within
    jobproc.KILL_GRACE of the KILL."""

    def __call__(self, info: dict[str, Any]) -> None:
        super().__call__(info)
        if self.cairn.jobs.is_cancelled(info["job_id"]):
            raise jobproc.Killed("the job was cancelled; its job process was stopped "
                                 "(exit status -9)")


async def test_a_drop_killed_after_its_manifest_went_is_failed_not_cancelled(
        client: Any) -> None:
    await fill(client, table="a", files=1)
    keep = (await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"]
    await fill(client, table="b", files=1)
    doomed = (await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"]
    gate = Killing(state(client))
    faults.register("prune.before_delete", gate)
    job_id, (k_status, k_body), (status, body) = await killed_in_tail(
        client, f"DROP BACKUP '{doomed}'", gate)

    message = (f"backup '{doomed}' dropped; freeing its objects failed (the next drop in this "
               "target frees them): KILL JOB stopped it")
    job = await job_row(client, job_id)
    assert (job["status"], job["error_message"]) == ("failed", message), job
    assert (k_status, k_body["results"][0]["rows"]) == (
        200, [{"job_id": job_id, "status": "failed"}]), k_body
    assert (status, body["error"]["code"], body["error"]["message"]) == (
        503, "UNAVAILABLE", message), body
    assert await backups_of(client) == await backups_of(client, "") == {keep}

