"""A job process killed from outside (the OOM killer, an operator's kill -9)
in the middle of a drop's prune: DROP BACKUP, keep_last of a BACKUP or of a
backup set (storage.jobchild). After its manifests went, the catalog went on
listing the dropped backups (SHOW BACKUPS, system.backups; VERIFY and
RESTORE of them NOT_FOUND) until the data directory was started again, and
the statement was 500 INTERNAL, logged as a server bug.

Now the catalog forgets the backups whose manifests are gone, the error is
503 UNAVAILABLE saying what was dropped (as a prune failing after the
manifest went, docs/sql.md), a keep_last's that its own backup is complete,
and the next drop in the target frees what the dropped ones alone used."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage import jobproc
from storage.backup.drops import drop_and_prune
from tests.helpers import err, fill, ok, rows, sql, target_files


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "idle"
    return cairn_config


def lose_at(point: str) -> None:
    """SIGKILL the job process when its call reaches `point` (the fault runs
    in the server while the process waits for its answer)."""
    def lose(info: dict[str, Any]) -> None:
        for pid in jobproc.busy():
            os.kill(pid, signal.SIGKILL)

    faults.register(point, lose)


def objects_in(target: Path) -> set[str]:
    return {p.name for p in (target / "objects").rglob("*") if p.is_file()}


def used_by(target: Path, backup_id: str) -> set[str]:
    doc = json.loads((target / "manifests" / f"{backup_id}.json").read_bytes())
    return {o["oid"] for o in doc["objects"]}


async def backups_of_own_tables(client: Any, n: int, what: str = "DATABASE app") -> list[str]:
    """`n` backups of app, each holding a table (objects) no other holds."""
    ids = []
    for k in range(n):
        await fill(client, table=f"o{k}", files=1)
        ids.append((await rows(client, f"BACKUP {what} TO 'bk'"))[0]["backup_id"])
        await ok(client, f"DROP TABLE app.o{k}")
    return ids


async def listed(client: Any) -> tuple[set[str], set[str]]:
    """(the catalog's backups, system.backups', the target's)."""
    shown = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    table = {r["backup_id"] for r in await rows(client, "SELECT backup_id FROM system.backups")}
    assert shown == table
    return shown, {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'bk'")}


def no_bug_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A WARNING line for the statement, no ERROR, no trace."""
    assert [r for r in caplog.records if "job process ended" in r.getMessage()
            and r.levelno == logging.WARNING]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_drop_whose_job_process_is_lost_after_the_manifest_forgets_it(
        client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "backups" / "bk"
    b0, b1, b2 = await backups_of_own_tables(client, 3)
    only_b0 = used_by(target, b0) - used_by(target, b1) - used_by(target, b2)
    assert only_b0
    lose_at("prune.before_delete")
    status, body = await sql(client, f"DROP BACKUP '{b0}'")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert await listed(client) == ({b1, b2}, {b1, b2})  # the catalog listed b0 still
    message = body["error"]["message"]
    assert message == (f"backup '{b0}' dropped; freeing its objects failed (the next drop in "
                       "this target frees them): the job process ended in the middle of its "
                       "work (exit status -9)"), message
    await err(client, f"VERIFY BACKUP '{b0}'", "NOT_FOUND")
    job = (await rows(client, "SELECT status, error_message FROM system.jobs "
                              "WHERE job_type = 'drop_backup'"))[0]
    assert job == {"status": "failed", "error_message": message}
    assert only_b0 <= objects_in(target)
    no_bug_logged(caplog)

    faults.clear()
    await ok(client, f"DROP BACKUP '{b1}'")  # the dead process's prune marker holds nothing up
    assert objects_in(target) == used_by(target, b2)  # b0's leftovers went with b1's own
    assert target_files(target)["prunes"] == target_files(target)["locks"] == set()
    assert await listed(client) == ({b2}, {b2})
    assert (await rows(client, f"VERIFY BACKUP '{b2}'"))[0]["is_valid"] is True


async def test_a_drop_whose_job_process_is_lost_before_the_manifest_keeps_it(
        client: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost before the manifest went: the backup stays listed, the error is
    the lost process's alone, and the drop may be run again."""
    (b0,) = await backups_of_own_tables(client, 1)
    real = jobproc.call

    def lost_drop(job: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if fn is drop_and_prune:
            return real(job, killed)  # the process dies before it removes anything
        return real(job, fn, *args, **kwargs)

    monkeypatch.setattr(jobproc, "call", lost_drop)
    status, body = await sql(client, f"DROP BACKUP '{b0}'")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert body["error"]["message"] == ("the job process ended in the middle of its work "
                                        "(exit status -9)"), body
    assert await listed(client) == ({b0}, {b0})
    no_bug_logged(caplog)
    monkeypatch.setattr(jobproc, "call", real)
    await ok(client, f"DROP BACKUP '{b0}'")
    assert await listed(client) == (set(), set())


def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def test_a_keep_last_whose_job_process_is_lost_says_its_backup_landed(
        client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "backups" / "bk"
    b0, b1 = await backups_of_own_tables(client, 2)
    await fill(client, table="o2", files=1)
    lose_at("prune.before_delete")
    status, body = await sql(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    job = (await rows(client, "SELECT status, error_message, backup_id, result FROM system.jobs "
                              "WHERE job_type = 'backup' ORDER BY job_id DESC LIMIT 1"))[0]
    new = job["backup_id"]
    message = body["error"]["message"]
    assert message == (
        f"backup '{new}' is complete, but keep_last could not drop older ones: "
        f"backups '{b1}', '{b0}' dropped; freeing their objects failed (the next drop in this "
        "target frees them): the job process ended in the middle of its work (exit status -9)"
    ), message
    assert job["status"] == "failed" and job["error_message"] == message
    assert job["result"]["backup_id"] == new and job["result"]["status"] == "completed"
    assert await listed(client) == ({new}, {new})
    for gone in (b0, b1):
        await err(client, f"VERIFY BACKUP '{gone}'", "NOT_FOUND")
    assert (await rows(client, f"VERIFY BACKUP '{new}'"))[0]["is_valid"] is True
    no_bug_logged(caplog)

    faults.clear()
    latest = (await rows(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)"))[0]
    assert objects_in(target) == used_by(target, latest["backup_id"])
    assert await listed(client) == ({latest["backup_id"]}, {latest["backup_id"]})


async def test_a_keep_last_of_sets_whose_job_process_is_lost_forgets_what_went(
        client: Any, tmp_path: Path) -> None:
    """BACKUP ALL … keep_last drops each older set member by member (a job-
    process call each): the member whose manifest went is forgotten; the
    others, still in the target, stay listed."""
    await ok(client, "CREATE NAMESPACE other; CREATE TABLE other.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO other.t VALUES (1)")
    (member,) = await backups_of_own_tables(client, 1, "ALL")
    old = {b for b in (await listed(client))[0] if b.startswith(member.rsplit(".", 1)[0])}
    assert len(old) == 2
    await fill(client, table="o1", files=1)
    lose_at("prune.before_delete")
    status, body = await sql(client, "BACKUP ALL TO 'bk' WITH (keep_last = 1)")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    message = body["error"]["message"]
    assert "is complete, but keep_last could not drop older ones: backup '" in message, body
    (dropped,) = {b for b in old if f"'{b}' dropped; freeing its objects failed" in message}
    catalog, in_target = await listed(client)
    assert catalog == in_target and old & catalog == old - {dropped}
    faults.clear()
    newest = await rows(client, "BACKUP ALL TO 'bk' WITH (keep_last = 1)")
    catalog, in_target = await listed(client)
    # The set before went whole; the old one's member left stays (a set
    # missing a member is neither counted nor dropped), listed as it is there.
    assert catalog == in_target == {r["backup_id"] for r in newest} | (old - {dropped})
