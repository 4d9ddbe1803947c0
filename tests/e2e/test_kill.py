"""KILL JOB and restarts: a cancelled or interrupted backup, restore or verify
leaves nothing behind, in the target or in the catalog.

Cancellation is placed exactly with fault points: a `Gate` parks the job's
thread there until KILL JOB cancels it. Crashes are placed with
`CAIRN_FAULTS=point:kill` in a real `cairn serve` process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from tests.helpers import Gate, ServerProcess, fill, job_row, ok, sql, state, target_files, wait_job


async def kill(client: Any, job_id: str) -> float:
    """KILL JOB; returns how long it took until the job had stopped, cancelled."""
    started = time.monotonic()
    rows = (await ok(client, f"KILL JOB '{job_id}'"))[0]["rows"]
    took = time.monotonic() - started
    assert rows == [{"job_id": job_id, "status": "cancelled"}]
    row = await job_row(client, job_id)
    assert row["status"] == "cancelled" and "cancelled" in row["error_message"]
    assert row["finished_at"] is not None
    return took


async def source(client: Any) -> dict[str, Any]:
    """app.old (one file) backed up as B0; then app.new (two files and buffered
    rows) that the next backup must write."""
    await fill(client, table="old", files=1)
    b0 = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    await fill(client, table="new", files=2)
    await ok(client, "INSERT INTO app.new VALUES (100000, 'buffered')")
    return b0


def tmp_in(path: Path) -> bool:
    return path.exists() and any(path.iterdir())


# --- backup ---------------------------------------------------------------------


@pytest.mark.parametrize("point", ["backup.before_object", "backup.mid_object",
                                   "backup.before_manifest"])
async def test_cancelled_backup_leaves_nothing(client: Any, tmp_path: Path, point: str) -> None:
    b0 = await source(client)
    target = tmp_path / "backups" / "nightly"
    before = target_files(target)
    if point == "backup.mid_object":
        # Parks while a copy is in flight: a temp file exists, no object published yet.
        gate = Gate(state(client), match=lambda info: tmp_in(target / "tmp"))
    elif point == "backup.before_object":
        gate = Gate(state(client), match=lambda info: info["index"] == 0)
    else:
        gate = Gate(state(client))
    faults.register(point, gate)

    waiting = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'nightly'"))
    info = await gate.reach()
    if point == "backup.before_manifest":
        assert len(target_files(target)["objects"]) == len(before["objects"]) + 3
    assert await kill(client, info["job_id"]) < 1.0
    status, body = await waiting
    assert status == 409 and body["error"]["code"] == "CANCELLED", body

    assert target_files(target) == before
    listed = (await ok(client, "SELECT backup_id FROM system.backups"))[0]["rows"]
    assert listed == [{"backup_id": b0["backup_id"]}]
    assert not tmp_in(tmp_path / "data" / "tmp")  # the exported buffers are gone too
    assert (await ok(client, f"VERIFY BACKUP '{b0['backup_id']}'"))[0]["rows"][0]["is_valid"]
    # The same backup simply runs again.
    faults.clear()
    again = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    assert again["bytes_written"] > 0


# --- restore ----------------------------------------------------------------------


async def namespace_state(client: Any, tmp_path: Path) -> tuple[Any, ...]:
    names = (await ok(client, "SHOW NAMESPACES"))[0]["rows"]
    tables = (await ok(client, "SELECT namespace, table_name, files, flushed_rows "
                               "FROM system.tables ORDER BY 1, 2"))[0]["rows"]
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "data" / "files").rglob("*"))
    return [n["namespace"] for n in names], tables, files


@pytest.mark.parametrize("replace", [False, True], ids=["as_new", "replace"])
@pytest.mark.parametrize("point", ["restore.before_object", "restore.mid_object",
                                   "restore.before_install"])
async def test_cancelled_restore_leaves_no_trace(
    client: Any, tmp_path: Path, point: str, replace: bool
) -> None:
    await fill(client, files=3)
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    if replace:  # an older `copy` that must stay whole and readable
        await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
        await ok(client, "INSERT INTO copy.blobs VALUES (-1, 'only in the old copy')")
    before = await namespace_state(client, tmp_path)
    rows_before = (await ok(client, "SELECT count(*) AS n FROM app.blobs"))[0]["rows"]
    match = (lambda info: info["index"] == 1) if point == "restore.before_object" else None
    gate = Gate(state(client), match=match)
    faults.register(point, gate)

    text = "RESTORE DATABASE app FROM 'nightly' AS copy"
    waiting = asyncio.create_task(sql(client, text + (" WITH (replace = true)" if replace else "")))
    info = await gate.reach()
    assert await kill(client, info["job_id"]) < 1.0
    status, body = await waiting
    assert status == 409 and body["error"]["code"] == "CANCELLED", body

    assert await namespace_state(client, tmp_path) == before
    assert (await ok(client, "SELECT count(*) AS n FROM app.blobs"))[0]["rows"] == rows_before
    if replace:
        old = (await ok(client, "SELECT data FROM copy.blobs WHERE id = -1"))[0]["rows"]
        assert old == [{"data": "only in the old copy"}]


# --- KILL under real I/O, a queued job, errors -------------------------------------------


@pytest.mark.parametrize("kind", ["backup", "restore", "verify"])
async def test_kill_stops_a_busy_job_within_a_second(
    client: Any, tmp_path: Path, kind: str
) -> None:
    await fill(client, files=4, rows=100, width=500)
    b = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    before = await namespace_state(client, tmp_path)
    state(client).config.backup.throttle_bytes_per_second = 200_000  # 400 KB: ~2 s
    text = {
        "backup": "BACKUP DATABASE app TO 'fresh' WITH (detached = true)",
        "restore": "RESTORE DATABASE app FROM 'nightly' AS copy WITH (detached = true)",
        "verify": f"VERIFY BACKUP '{b['backup_id']}' WITH (detached = true)",
    }[kind]
    job_id = (await ok(client, text))[0]["rows"][0]["job_id"]
    for _ in range(250):
        row = await job_row(client, job_id)
        if row["status"] == "running" and row["bytes_done"] > 0:
            break
        await asyncio.sleep(0.02)
    assert 0 < row["bytes_done"] < row["bytes_total"], row
    assert await kill(client, job_id) < 1.0
    assert await namespace_state(client, tmp_path) == before
    fresh = target_files(tmp_path / "backups" / "fresh")
    assert all(not part for part in fresh.values()), fresh


async def test_kill_a_queued_job(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=1)
    gate = Gate(state(client))
    faults.register("backup.before_object", gate)
    first = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[0]
    await gate.reach()
    queued = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'nightly'"))
    for _ in range(100):
        rows = (await ok(client, "SELECT job_id FROM system.jobs WHERE status = 'queued'"))[0]
        if rows["rows"]:
            break
        await asyncio.sleep(0.01)
    (second,) = rows["rows"]
    assert await kill(client, second["job_id"]) < 1.0
    status, body = await queued
    assert status == 409 and body["error"]["code"] == "CANCELLED"
    assert (await job_row(client, second["job_id"]))["started_at"] is None
    gate.opened.set()
    done = await wait_job(client, first["rows"][0]["job_id"])
    assert done["status"] == "completed"


async def test_kill_errors(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app")
    done = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    status, body = await sql(client, "KILL JOB 'job-doesnotexist'")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body = await sql(client, f"KILL JOB '{done['job_id']}'")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT"
    assert "completed" in body["error"]["message"]


# --- restarts ------------------------------------------------------------------------


def config_file(tmp_path: Path, **jobs: int) -> Path:
    path = tmp_path / "cairn.toml"
    extra = "".join(f"{k} = {v}\n" for k, v in jobs.items())
    path.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n[jobs]\n{extra}')
    return path


def post_ok(srv: ServerProcess, text: str) -> dict[str, Any]:
    status, body = srv.post(text)
    assert status == 200, body
    return body["results"][-1]


def fill_process(srv: ServerProcess, table: str, files: int = 1) -> None:
    post_ok(srv, f"CREATE NAMESPACE IF NOT EXISTS app; CREATE TABLE app.{table} (x INT)")
    for i in range(files):
        post_ok(srv, f"INSERT INTO app.{table} VALUES ({i}); FLUSH TABLE app.{table}")


def died(srv: ServerProcess) -> None:
    assert srv.proc is not None
    srv.proc.wait(15)


def job_of(srv: ServerProcess, job_id: str) -> dict[str, Any]:
    return post_ok(srv, f"SELECT * FROM system.jobs WHERE job_id = '{job_id}'")["rows"][0]


@pytest.mark.parametrize("point", ["backup.before_manifest", "backup.after_manifest",
                                   "prune.before_delete"])
def test_a_crash_is_cleaned_up_at_restart(
    tmp_path: Path, server_process: Any, point: str
) -> None:
    config = config_file(tmp_path)
    srv = server_process(config=config, env={"CAIRN_FAULTS": f"{point}:kill"})
    target = tmp_path / "backups" / "nightly"
    fill_process(srv, "old")
    if point == "prune.before_delete":  # the crash is in DROP BACKUP
        b0 = post_ok(srv, "BACKUP DATABASE app TO 'nightly'")["rows"][0]
        fill_process(srv, "new")
        b1 = post_ok(srv, "BACKUP DATABASE app TO 'nightly'")["rows"][0]
        with contextlib.suppress(Exception):
            srv.post(f"DROP BACKUP '{b1['backup_id']}'")
    else:
        job_id = post_ok(srv, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")[
            "rows"][0]["job_id"]
    died(srv)

    again = server_process(config=config)
    listed = post_ok(again, "SELECT backup_id FROM system.backups")["rows"]
    held = target_files(target)
    assert held["prunes"] == held["tmp"] == set()
    if point != "backup.before_manifest":
        assert held["locks"] == set()
    if point == "backup.before_manifest":
        # What it stored is kept for the next backup (resume_window; see
        # tests/e2e/test_backup_resume.py), under its lock, and nothing else.
        row = job_of(again, job_id)
        assert row["status"] == "failed" and "are kept until" in row["error_message"]
        kept = json.loads(row["result"]) if isinstance(row["result"], str) else row["result"]
        assert listed == [] and held["manifests"] == set()
        assert held["locks"] == {f"{kept['backup_id']}.json"}
        assert len(held["objects"]) == kept["objects"] == 1
        assert post_ok(again, "BACKUP DATABASE app TO 'nightly'")["rows"][0]["bytes_written"] == 0
        assert target_files(target)["locks"] == set()
    elif point == "backup.after_manifest":
        row = job_of(again, job_id)
        assert row["status"] == "failed" and "the backup is valid" in row["error_message"]
        (only,) = held["manifests"]
        assert listed == [{"backup_id": only}]
        verified = post_ok(again, f"VERIFY BACKUP '{only}'")["rows"][0]
        assert verified["is_valid"], verified
    else:
        drop = post_ok(again, "SELECT status, error_message FROM system.jobs "
                              "WHERE job_type = 'drop_backup'")
        # It said only "interrupted by server restart" (a DROP answered
        # `completed` on a full data directory, then killed, the same), while
        # the backup was gone: the row says what the drop did, as a BACKUP's
        # and a RESTORE's do.
        assert drop["rows"] == [{"status": "failed", "error_message": (
            f"interrupted by server restart after backup '{b1['backup_id']}' was dropped "
            "(its manifest is gone from its target); the backup is dropped and its objects "
            "freed")}]
        assert listed == [{"backup_id": b0["backup_id"]}]
        assert held["manifests"] == {b0["backup_id"]}
        m = json.loads((target / "manifests" / f"{b0['backup_id']}.json").read_text())
        assert held["objects"] == {o["oid"] for o in m["objects"]}  # b1's own ones swept
        assert post_ok(again, f"VERIFY BACKUP '{b0['backup_id']}'")["rows"][0]["is_valid"]


def test_running_and_queued_jobs_of_a_dead_server_are_failed(
    tmp_path: Path, server_process: Any
) -> None:
    config = config_file(tmp_path, max_concurrent=1)
    srv = server_process(config=config, env={"CAIRN_FAULTS": "backup.before_object:sleep=60"})
    fill_process(srv, "t", files=2)
    ids = [post_ok(srv, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")["rows"][0][
        "job_id"] for _ in range(2)]
    deadline = time.monotonic() + 10
    while [job_of(srv, i)["status"] for i in ids] != ["running", "queued"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    srv.kill()

    again = server_process(config=config)
    for job_id in ids:
        row = job_of(again, job_id)
        assert row["status"] == "failed", row
        assert row["error_message"] == "interrupted by server restart"
    held = target_files(tmp_path / "backups" / "nightly")
    assert all(not part for part in held.values()), held
    assert post_ok(again, "SELECT count(*) AS n FROM system.backups")["rows"] == [{"n": 0}]
    assert post_ok(again, "BACKUP DATABASE app TO 'nightly'")["rows"][0]["status"] == "completed"
