"""Resumable after a crash: a backup killed before its manifest keeps what it
stored (its lock stays) for the next backup of that namespace to the same
target within `[backup] resume_window`; after the window the objects go.

The crash is real (`CAIRN_FAULTS=backup.before_manifest:kill` in a `cairn serve`
process); the restart is in-process, so the expiry can be given any time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server import resume
from server.app import CAIRN, create_app
from server.config import Config
from tests.e2e.test_disk_full import refuse_writes
from tests.helpers import ok, rows, target_files


def crash_a_backup(tmp_path: Path, server_process: Any, point: str = "backup.before_manifest",
                   namespaces: tuple[str, ...] = ("app",),
                   backup: str = "BACKUP DATABASE app TO 'nightly'") -> str:
    """Fill app (and others) in a real server; `backup` dies at `point`.
    Returns the dead backup's job id."""
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n')
    srv = server_process(config=config, env={"CAIRN_FAULTS": f"{point}:kill"})
    for ns in namespaces:
        status, body = srv.post(f"CREATE NAMESPACE {ns}; CREATE TABLE {ns}.t (id INT, data TEXT)")
        assert status == 200, body
        for i in range(3):
            values = ", ".join(f"({i * 100 + j}, '{ns}-{i}-{j}-{'x' * 200}')" for j in range(100))
            status, body = srv.post(f"INSERT INTO {ns}.t VALUES {values}; FLUSH TABLE {ns}.t")
            assert status == 200, body
    status, body = srv.post(f"{backup} WITH (detached = true)")
    assert status == 200, body
    assert srv.proc is not None
    srv.proc.wait(15)
    return str(body["results"][0]["rows"][0]["job_id"])


def config_of(tmp_path: Path, window: str = "24h") -> Config:
    cfg = Config()
    cfg.pgwire.port = 0  # no PostgreSQL listener on the default port
    cfg.storage.data_dir = str(tmp_path / "data")
    cfg.backup.roots = [str(tmp_path / "backups")]
    cfg.backup.resume_window = window
    cfg.server.port = 0
    return cfg


async def test_the_next_backup_sends_only_what_is_missing(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    job_id = crash_a_backup(tmp_path, server_process)
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    target = tmp_path / "backups" / "nightly"
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["status"] == "failed" and "are kept until" in job["error_message"]
    kept = job["result"]
    assert kept["kept_for_resume"] is True and kept["objects"] == 3 and kept["bytes"] > 0
    held = target_files(target)
    assert held["locks"] == {f"{kept['backup_id']}.json"} and len(held["objects"]) == 3
    assert held["manifests"] == set()

    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    assert b["bytes_written"] == 0 and b["files"] == 3  # everything was already there
    held = target_files(target)
    assert held["locks"] == set() and len(held["objects"]) == 3
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["result"]["kept_for_resume"] is False
    assert job["result"]["resumed_by"] == b["job_id"]
    (verified,) = await rows(client, f"VERIFY BACKUP '{b['backup_id']}'")
    assert verified["is_valid"], verified
    await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    assert await rows(client, "SELECT count(*) AS n FROM copy.t") == [{"n": 300}]


async def test_kept_objects_survive_a_prune_and_expire_after_the_window(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    job_id = crash_a_backup(tmp_path, server_process, namespaces=("app", "other"))
    client = await aiohttp_client(create_app(config_of(tmp_path, window="2h")))
    cairn = client.server.app[CAIRN]
    target = tmp_path / "backups" / "nightly"
    kept_objects = target_files(target)["objects"]
    assert len(kept_objects) == 3
    # Another namespace's backup, and a drop that prunes the target, leave them.
    (other,) = await rows(client, "BACKUP DATABASE other TO 'nightly'")
    await ok(client, f"DROP BACKUP '{other['backup_id']}'")
    assert target_files(target)["objects"] == kept_objects
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    until = datetime.fromisoformat(job["result"]["kept_until"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)

    assert await cairn.run(resume.expire, cairn, until - timedelta(seconds=1)) == 0
    assert target_files(target)["objects"] == kept_objects
    assert await cairn.run(resume.expire, cairn, until + timedelta(seconds=1)) == 1
    held = target_files(target)
    assert held["objects"] == held["locks"] == set()
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["result"]["kept_for_resume"] is False and job["result"]["expired"] is True
    assert await cairn.run(resume.expire, cairn, until + timedelta(days=1)) == 0


async def test_a_window_of_zero_keeps_nothing(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    job_id = crash_a_backup(tmp_path, server_process)
    client = await aiohttp_client(create_app(config_of(tmp_path, window="0")))
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["status"] == "failed"
    assert job["error_message"] == "interrupted by server restart"
    held = target_files(tmp_path / "backups" / "nightly")
    assert held["objects"] == held["locks"] == set()


async def test_a_kept_backup_outlives_the_job_history_until_it_is_released(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """A short history (history_max_count) trimmed the failed job's record, the
    only thing that knew of its kept lock: nothing released it, ever."""
    job_id = crash_a_backup(tmp_path, server_process, namespaces=("app", "other"))
    cfg = config_of(tmp_path)
    cfg.jobs.history_max_count = 3
    client = await aiohttp_client(create_app(cfg))
    cairn = client.server.app[CAIRN]
    target = tmp_path / "backups" / "nightly"
    for _ in range(6):
        await ok(client, "BACKUP DATABASE other TO 'elsewhere'")
    await cairn.run(cairn.jobs.trim_history)
    assert len(await rows(client, "SELECT job_id FROM system.jobs")) <= 4
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")  # still there: it holds the lock
    assert job["result"]["kept_for_resume"] is True
    assert len(target_files(target)["locks"]) == 1

    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    assert target_files(target)["locks"] == set()  # released by the next backup
    for _ in range(3):
        await ok(client, "BACKUP DATABASE other TO 'elsewhere'")
    await cairn.run(cairn.jobs.trim_history)
    assert await rows(client, f"SELECT job_id FROM system.jobs WHERE job_id = '{job_id}'") == []


async def test_a_clean_up_that_cannot_reach_its_target_stays_pending_and_is_retried(
    tmp_path: Path, server_process: Any, aiohttp_client: Any, caplog: Any
) -> None:
    """kill -9 mid-backup, and the target's disk is not there at the restart:
    the clean-up took the missing target for an empty one, said nothing, and
    was never tried again; the lock and its objects stayed for good."""
    job_id = crash_a_backup(tmp_path, server_process)
    backups = tmp_path / "backups"
    backups.rename(tmp_path / "unmounted")
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    cairn = client.server.app[CAIRN]
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["status"] == "failed"
    assert "clean-up could not be done yet" in job["error_message"], job
    assert "nightly" in job["error_message"] and job["result"] is None
    assert any("is pending" in r.message and r.levelname == "WARNING" for r in caplog.records)
    from server import recovery
    assert await cairn.run(recovery.retry_pending, cairn.jobs) == 0  # still not there

    backups.rmdir()  # the root made again, empty; the disk comes back
    (tmp_path / "unmounted").rename(backups)
    assert await cairn.run(recovery.retry_pending, cairn.jobs) == 1
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["result"]["kept_for_resume"] is True, job
    assert "clean-up" not in job["error_message"] and "are kept until" in job["error_message"]
    assert len(target_files(backups / "nightly")["locks"]) == 1
    assert await cairn.run(recovery.retry_pending, cairn.jobs) == 0  # nothing pending now
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    assert target_files(backups / "nightly")["locks"] == set()


async def released_by(client: Any, job_id: str, target: Path) -> str:
    """The kept lock is gone from `target` and the killed job says who released it."""
    assert target_files(target)["locks"] == set()
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["result"]["kept_for_resume"] is False, job
    return str(job["result"]["resumed_by"])


async def test_an_archive_base_releases_the_kept_lock(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """The base START ARCHIVING takes is a backup of the namespace to the
    target: it released no kept lock (only BACKUP DATABASE/TABLE did), which
    stayed, the killed job saying kept_for_resume, for the whole window."""
    job_id = crash_a_backup(tmp_path, server_process)
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    target = tmp_path / "backups" / "nightly"
    assert len(target_files(target)["locks"]) == 1
    await ok(client, "START ARCHIVING DATABASE app TO 'nightly'")
    (base,) = await rows(client, "SELECT job_id, status FROM system.jobs "
                                 f"WHERE job_type = 'backup' AND job_id <> '{job_id}'")
    assert base["status"] == "completed"
    assert await released_by(client, job_id, target) == base["job_id"]
    await ok(client, "STOP ARCHIVING DATABASE app")


async def test_a_backup_set_releases_the_kept_lock_of_its_members(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """BACKUP DATABASE a, b (and BACKUP ALL) stores a backup of each: one of
    the killed backup's namespace released its kept lock no more than an
    archive base did."""
    job_id = crash_a_backup(tmp_path, server_process, namespaces=("app", "other"))
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    target = tmp_path / "backups" / "nightly"
    assert len(target_files(target)["locks"]) == 1
    members = await rows(client, "BACKUP DATABASE app, other TO 'nightly'")
    assert sorted(m["namespace"] for m in members) == ["app", "other"]
    assert await released_by(client, job_id, target) == members[0]["job_id"]
    (app,) = [m for m in members if m["namespace"] == "app"]
    assert app["bytes_written"] == 0 and app["files"] == 3  # the kept objects served
    (verified,) = await rows(client, f"VERIFY BACKUP '{app['backup_id']}'")
    assert verified["is_valid"], verified


async def test_a_kept_backup_set_is_released_by_the_next_set_of_its_namespaces(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """A killed BACKUP DATABASE a, b kept its lock naming no namespace: no
    backup released it, only the window."""
    job_id = crash_a_backup(tmp_path, server_process, namespaces=("app", "other"),
                            backup="BACKUP DATABASE app, other TO 'nightly'")
    client = await aiohttp_client(create_app(config_of(tmp_path)))
    target = tmp_path / "backups" / "nightly"
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["result"]["kept_for_resume"] is True, job
    assert job["result"]["namespaces"] == ["app", "other"]
    assert "namespaces 'app', 'other' together" in job["error_message"]
    assert len(target_files(target)["locks"]) == 1
    await ok(client, "BACKUP DATABASE app TO 'nightly'")  # one of them: it stays
    assert len(target_files(target)["locks"]) == 1
    members = await rows(client, "BACKUP DATABASE app, other TO 'nightly'")
    assert await released_by(client, job_id, target) == members[0]["job_id"]


async def test_a_kept_lock_released_on_a_full_disk_reads_released(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """The window passes while the data directory refuses writes: the kept
    lock is removed from the target, and the job's row, which the disk
    refused, read `kept_for_resume: true` (until a later release wrote it)
    for a lock no longer there. Now it reads released, kept in memory and
    written once the disk takes writes again (Catalog.keep)."""
    job_id = crash_a_backup(tmp_path, server_process)
    client = await aiohttp_client(create_app(config_of(tmp_path, window="2h")))
    cairn = client.server.app[CAIRN]
    target = tmp_path / "backups" / "nightly"
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    until = datetime.fromisoformat(job["result"]["kept_until"].replace("Z", "+00:00"))
    await refuse_writes(client, "app.t")
    assert await cairn.run(resume.expire, cairn, until + timedelta(seconds=1)) == 1  # was 0
    assert target_files(target)["locks"] == set()
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["result"]["kept_for_resume"] is False and job["result"]["expired"] is True, job
    assert await cairn.run(resume.expire, cairn, until + timedelta(days=1)) == 0
