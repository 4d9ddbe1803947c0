"""SIGKILL during a backup and during a restore, then restart: no partial
backup listed, no orphan objects, no partial namespace, the job failed.

A real `cairn serve` process is killed; the backup throttle
(`[backup] throttle_bytes_per_second`) makes the job last long enough to be
killed in the middle of its objects."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tests.helpers import ServerProcess

ROWS_PER_STATEMENT = 500


def write_config(tmp_path: Path, throttle: int) -> Path:
    cfg = tmp_path / f"cairn-{throttle}.toml"
    cfg.write_text(
        f'[backup]\nroots = ["{tmp_path / "backups"}"]\nthrottle_bytes_per_second = {throttle}\n'
    )
    return cfg


def fill(srv: ServerProcess, statements: int = 4) -> int:
    """A namespace with a few MB of hard-to-compress flushed rows."""
    status, body = srv.post(
        "CREATE NAMESPACE app; CREATE TABLE app.blobs (id BIGINT PRIMARY KEY, data TEXT)"
    )
    assert status == 200, body
    n = 0
    for _ in range(statements):
        values = ", ".join(
            f"({n + i}, '{os.urandom(400).hex()}')" for i in range(ROWS_PER_STATEMENT)
        )
        n += ROWS_PER_STATEMENT
        status, body = srv.post(f"INSERT INTO app.blobs VALUES {values}")
        assert status == 200, body
        status, body = srv.post("FLUSH TABLE app.blobs")
        assert status == 200, body
    return n


def wait_for_progress(srv: ServerProcess, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = srv.post(
            f"SELECT status, bytes_done, bytes_total FROM system.jobs WHERE job_id = '{job_id}'"
        )
        row = body["results"][0]["rows"][0]
        if row["status"] == "running" and 0 < row["bytes_done"] < row["bytes_total"]:
            return row
        assert row["status"] in ("queued", "running"), row
        time.sleep(0.05)
    raise AssertionError("the job never got under way")


def job(srv: ServerProcess, job_id: str) -> dict[str, Any]:
    _, body = srv.post(f"SELECT * FROM system.jobs WHERE job_id = '{job_id}'")
    return body["results"][0]["rows"][0]


def test_sigkill_during_backup(tmp_path: Path, server_process: Any) -> None:
    data = tmp_path / "data"
    srv = server_process(data, config=write_config(tmp_path, 1_000_000))
    fill(srv)
    _, body = srv.post("BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = body["results"][0]["rows"][0]["job_id"]
    wait_for_progress(srv, job_id)
    srv.kill()

    again = server_process(data, config=write_config(tmp_path, 0))
    failed = job(again, job_id)
    assert failed["status"] == "failed"
    assert "interrupted by server restart" in failed["error_message"]
    kept = failed["result"] or {"objects": 0}
    _, body = again.post("SHOW BACKUPS IN 'nightly'")
    # The first backup into the target: with nothing kept, no target is left.
    assert body["results"][0]["rows"] == [] if kept["objects"] else body["error"]["code"] == \
        "NOT_FOUND"
    _, body = again.post("SHOW BACKUPS")
    assert body["results"][0]["rows"] == []
    target = tmp_path / "backups" / "nightly"
    leftovers = [p for p in target.rglob("*") if p.is_file() and p.name != "config.json"]
    # Whole objects it stored are kept, under its lock, for the next backup
    # ([backup] resume_window); nothing else (no temp file, no manifest).
    locks = [p for p in leftovers if p.parent.name == "locks"]
    objects = [p for p in leftovers if p.parent.parent.name == "objects"]
    assert sorted(locks + objects) == sorted(leftovers)
    assert len(objects) == kept["objects"] and len(locks) == (1 if kept["objects"] else 0)
    # The source is whole and a new backup works; it releases the kept lock.
    _, body = again.post("SELECT count(*) AS n FROM app.blobs")
    assert body["results"][0]["rows"] == [{"n": 4 * ROWS_PER_STATEMENT}]
    status, body = again.post("BACKUP DATABASE app TO 'nightly'")
    assert status == 200, body
    assert not [p for p in target.rglob("*") if p.parent.name == "locks" and p.is_file()]


def test_sigkill_during_restore(tmp_path: Path, server_process: Any) -> None:
    data = tmp_path / "data"
    srv = server_process(data, config=write_config(tmp_path, 2_000_000))
    n = fill(srv)
    status, body = srv.post("BACKUP DATABASE app TO 'nightly'")
    assert status == 200, body
    files_before = sorted(p.name for p in (data / "files").rglob("*.parquet"))
    _, body = srv.post("RESTORE DATABASE app FROM 'nightly' AS copy WITH (detached = true)")
    job_id = body["results"][0]["rows"][0]["job_id"]
    wait_for_progress(srv, job_id)
    srv.kill()

    again = server_process(data, config=write_config(tmp_path, 0))
    failed = job(again, job_id)
    assert failed["status"] == "failed"
    _, body = again.post("SHOW NAMESPACES")
    assert [r["namespace"] for r in body["results"][0]["rows"]] == ["app"]
    assert sorted(p.name for p in (data / "files").rglob("*.parquet")) == files_before
    assert not any((data / "tmp").iterdir())
    # The interrupted restore can simply be run again.
    status, body = again.post("RESTORE DATABASE app FROM 'nightly' AS copy")
    assert status == 200, body
    _, body = again.post("SELECT count(*) AS n FROM copy.blobs")
    assert body["results"][0]["rows"] == [{"n": n}]
