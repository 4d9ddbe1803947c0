"""SHOW JOBS, SHOW JOB, PAUSE JOB, RESUME JOB and CANCEL JOB over HTTP.

A pause is placed exactly: a `Gate` parks the job at a fault point, the test
sends PAUSE JOB, waits until the runner has the request and opens the gate; the
job then pauses at the check that follows the fault point."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.app import CAIRN, create_app
from server.config import Config
from tests.helpers import Gate, err, fill, job_row, ok, rows, sql, target_files, wait_job


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


def state(client: Any) -> Any:
    return client.server.app[CAIRN]


async def pause_at(client: Any, gate: Gate) -> str:
    """Once the job is parked at the gate: PAUSE JOB, then let it reach its check."""
    job_id = str((await gate.reach())["job_id"])
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    deadline = time.monotonic() + 60  # seconds under load
    while not state(client).jobs.pause_requested(job_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    gate.opened.set()
    status, body = await pausing
    assert status == 200, body
    assert body["results"][0]["rows"] == [{"job_id": job_id, "status": "paused"}]
    return job_id


def object_times(target: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (target / "objects").rglob("*") if p.is_file()}


def object_bytes(target: Path, names: set[str]) -> int:
    return sum(p.stat().st_size for p in (target / "objects").rglob("*") if p.name in names)


async def test_pause_and_resume_a_backup(client: Any, tmp_path: Path) -> None:
    await fill(client, files=3)
    await ok(client, "INSERT INTO app.blobs VALUES (100000, 'buffered')")
    target = tmp_path / "backups" / "nightly"
    gate = Gate(state(client), match=lambda info: info["index"] == 2)
    faults.register("backup.before_object", gate)
    waiting = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'nightly'"))
    job_id = await pause_at(client, gate)

    (shown,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert shown["status"] == "paused" and shown["job_type"] == "backup"
    assert shown["files_done"] == 2 and shown["files_total"] == 4
    assert (await job_row(client, job_id))["status"] == "paused"
    held = target_files(target)
    assert held["locks"] == {f"{shown['backup_id']}.json"}  # the lock is kept
    assert held["manifests"] == set() and len(held["objects"]) == 2
    stored_before = object_times(target)
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the request waits through the pause
    assert (await job_row(client, job_id))["status"] == "paused"
    assert await rows(client, f"PAUSE JOB '{job_id}'") == [{"job_id": job_id, "status": "paused"}]

    (resumed,) = await rows(client, f"RESUME JOB '{job_id}'")
    assert resumed["job_id"] == job_id and resumed["status"] in ("queued", "running", "completed")
    status, body = await waiting
    assert status == 200, body
    result = body["results"][0]["rows"][0]
    assert result["status"] == "completed" and result["files"] == 4
    after = object_times(target)
    assert {k: after[k] for k in stored_before} == stored_before  # nothing stored twice
    new = set(after) - set(stored_before)
    assert len(new) == 2
    # What the run wrote in all: the two objects from before the pause, once,
    # and after the resume only the two it had not stored.
    assert result["bytes_written"] == object_bytes(target, set(after))
    assert object_bytes(target, new) < result["bytes_written"]
    assert target_files(target)["locks"] == set()
    verified = (await rows(client, f"VERIFY BACKUP '{result['backup_id']}'"))[0]
    assert verified["is_valid"], verified
    await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    counts = await rows(client, "SELECT (SELECT count(*) FROM app.blobs) AS a, "
                                "(SELECT count(*) FROM copy.blobs) AS b")
    assert counts == [{"a": 301, "b": 301}]


async def test_kill_a_paused_backup_leaves_nothing(client: Any, tmp_path: Path) -> None:
    await fill(client, files=3)
    target = tmp_path / "backups" / "nightly"
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    waiting = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'nightly'"))
    job_id = await pause_at(client, gate)
    assert len(target_files(target)["objects"]) == 1

    started = time.monotonic()
    assert await rows(client, f"CANCEL JOB '{job_id}'") == [
        {"job_id": job_id, "status": "cancelled"}]
    # at once, not after the wait a job that keeps running gets (KILL_WAIT, 7 s);
    # 3 s for a machine running four test workers on two CPUs
    assert time.monotonic() - started < 3.0
    status, body = await waiting
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    held = target_files(target)
    assert held["locks"] == held["manifests"] == held["objects"] == set()
    assert await rows(client, "SELECT count(*) AS n FROM system.backups") == [{"n": 0}]


async def test_pause_and_resume_a_restore(client: Any, tmp_path: Path) -> None:
    await fill(client, files=3)
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("restore.before_object", gate)
    text = "RESTORE DATABASE app FROM 'nightly' AS copy WITH (detached = true)"
    (started,) = await rows(client, text)
    job_id = await pause_at(client, gate)
    assert job_id == started["job_id"]
    assert [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")] == ["app"]
    shown = (await rows(client, "SHOW JOBS"))[0]  # the newest
    assert shown["job_id"] == job_id and shown["status"] == "paused"
    assert shown["files_done"] == 1

    await ok(client, f"RESUME JOB '{job_id}'")
    done = await wait_job(client, job_id)
    assert done["status"] == "completed", done
    assert await rows(client, "SELECT count(*) AS n FROM copy.blobs") == [{"n": 300}]


async def test_kill_a_paused_restore_leaves_no_trace(client: Any, tmp_path: Path) -> None:
    await fill(client, files=3)
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    files_before = sorted((tmp_path / "data" / "files").rglob("*"))
    gate = Gate(state(client), match=lambda info: info["index"] == 2)
    faults.register("restore.before_object", gate)
    waiting = asyncio.create_task(sql(client, "RESTORE DATABASE app FROM 'nightly' AS copy"))
    job_id = await pause_at(client, gate)
    await ok(client, f"KILL JOB '{job_id}'")
    status, body = await waiting
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    assert [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")] == ["app"]
    assert sorted((tmp_path / "data" / "files").rglob("*")) == files_before


async def test_a_paused_job_gives_its_place_in_the_pool_back(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=2)
    await fill(client, ns="other", files=1)
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    (first,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = await pause_at(client, gate)
    # With one place in the pool, this backup can only run because the paused one left it.
    (second,) = await rows(client, "BACKUP DATABASE other TO 'nightly'")
    assert second["status"] == "completed"
    assert (await job_row(client, job_id))["status"] == "paused"
    await ok(client, f"RESUME JOB '{job_id}'")
    assert (await wait_job(client, first["job_id"]))["status"] == "completed"


async def test_pause_and_resume_errors(client: Any) -> None:
    await fill(client, files=1)
    (backup,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    (verify,) = await rows(client, f"VERIFY BACKUP '{backup['backup_id']}'")
    verify_job = (await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'verify'"))
    message = await err(client, f"PAUSE JOB '{verify_job[0]['job_id']}'", "INVALID_ARGUMENT")
    assert "only backup and restore jobs can be paused" in message
    flush_job = await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'flush'")
    await err(client, f"PAUSE JOB '{flush_job[0]['job_id']}'", "INVALID_ARGUMENT")
    message = await err(client, f"PAUSE JOB '{backup['job_id']}'", "INVALID_ARGUMENT")
    assert "completed" in message
    message = await err(client, f"RESUME JOB '{backup['job_id']}'", "INVALID_ARGUMENT")
    assert "not paused" in message
    for stmt in ("PAUSE", "RESUME", "CANCEL", "SHOW"):
        await err(client, f"{stmt} JOB 'job-doesnotexist'", "NOT_FOUND")


async def test_resume_of_a_running_job_is_refused(client: Any) -> None:
    await fill(client, files=2)
    gate = Gate(state(client))
    faults.register("backup.before_object", gate)
    (job,) = await rows(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    await gate.reach()
    message = await err(client, f"RESUME JOB '{job['job_id']}'", "INVALID_ARGUMENT")
    assert "running, not paused" in message
    gate.opened.set()
    assert (await wait_job(client, job["job_id"]))["status"] == "completed"


async def test_show_jobs_newest_first_and_a_user_sees_its_own(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [
        {"token": "root-secret", "user": "root", "role": "admin"},
        {"token": "alice-secret", "user": "alice", "role": "user"},
    ]
    client = await aiohttp_client(create_app(cairn_config))
    root, alice = {"token": "root-secret"}, {"token": "alice-secret"}
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT)", **root)
    await ok(client, "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t", **alice)
    await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (encryption_passphrase = 'pw')",
             **root)
    await ok(client, "INSERT INTO app.t VALUES (2); FLUSH TABLE app.t", **alice)

    every = await rows(client, "SHOW JOBS", **root)
    assert [(j["job_type"], j["user_id"]) for j in every] == [
        ("flush", "alice"), ("backup", "root"), ("flush", "alice")]
    assert [j["created_at"] for j in every] == sorted((j["created_at"] for j in every),
                                                       reverse=True)
    assert "'***'" in every[1]["statement"] and "pw" not in every[1]["statement"]
    own = await rows(client, "SHOW JOBS", **alice)
    assert [j["job_id"] for j in own] == [every[0]["job_id"], every[2]["job_id"]]
    (one,) = await rows(client, f"SHOW JOB '{every[0]['job_id']}'", **alice)
    assert one["status"] == "completed" and one["job_type"] == "flush"
    await err(client, f"SHOW JOB '{every[1]['job_id']}'", "NOT_FOUND", **alice)
    for stmt in ("PAUSE", "RESUME", "CANCEL", "KILL"):
        await err(client, f"{stmt} JOB '{every[0]['job_id']}'", "PERMISSION_DENIED", **alice)


def test_a_job_paused_when_the_server_dies_is_failed_at_restart(
    tmp_path: Path, server_process: Any
) -> None:
    """A pause lives in the server process: after a crash the paused backup is
    treated like a running one: failed, what it stored kept for the next backup
    of the namespace (resume_window), which then sends only the rest."""
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n')
    srv = server_process(config=config, env={"CAIRN_FAULTS": "backup.before_object:sleep=0.3"})

    def post_ok(text: str) -> list[dict[str, Any]]:
        status, body = srv.post(text)
        assert status == 200, body
        return list(body["results"][-1]["rows"])

    post_ok("CREATE NAMESPACE app; CREATE TABLE app.t (x INT)")
    for i in range(4):
        post_ok(f"INSERT INTO app.t VALUES ({i}); FLUSH TABLE app.t")
    job_id = post_ok("BACKUP DATABASE app TO 'nightly' WITH (detached = true)")[0]["job_id"]
    deadline = time.monotonic() + 10
    while post_ok(f"SHOW JOB '{job_id}'")[0]["files_done"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert post_ok(f"PAUSE JOB '{job_id}'") == [{"job_id": job_id, "status": "paused"}]
    target = tmp_path / "backups" / "nightly"
    assert target_files(target)["locks"] and target_files(target)["objects"]
    srv.kill()

    again = server_process(config=config)
    status, body = again.post(f"SHOW JOB '{job_id}'")
    (row,) = body["results"][0]["rows"]
    assert row["status"] == "failed" and "interrupted by server restart" in row["error_message"]
    held = target_files(target)
    assert held["manifests"] == set() and held["locks"] == {f"{row['backup_id']}.json"}
    stored = held["objects"]
    assert 1 <= len(stored) < 4
    status, body = again.post(f"RESUME JOB '{job_id}'")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    status, body = again.post("BACKUP DATABASE app TO 'nightly'")
    assert status == 200, body
    done = body["results"][0]["rows"][0]
    assert done["files"] == 4
    stored_bytes = sum(p.stat().st_size for p in (target / "objects").rglob("*")
                       if p.name in stored)
    assert 0 < done["bytes_written"] <= done["bytes"] - stored_bytes + 1024
    assert target_files(target)["locks"] == set()
