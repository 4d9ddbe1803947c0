"""What backup statements answer at the edges the docs promise: DROP BACKUP
IF EXISTS with and without IN, `detached` on every backup statement, RESTORE
TABLE of a table no backup holds, and options that contradict the statement."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from server import faults
from server.app import create_app
from server.config import Config
from tests.helpers import Gate, err, ok, rows, state, target_files, wait_job

MISSING = "bk-does-not-exist"


async def app_backup(client: Any, row: int = 1) -> dict[str, Any]:
    """A backup of app (one more row in it) to 'nightly'."""
    await ok(client, "CREATE NAMESPACE IF NOT EXISTS app; "
                     "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY); "
                     f"INSERT INTO app.t VALUES ({row})")
    return (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]


async def drop_jobs(client: Any) -> list[dict[str, Any]]:
    return await rows(client, "SELECT status, result FROM system.jobs "
                              "WHERE job_type = 'drop_backup' ORDER BY job_id")


# --- DROP BACKUP IF EXISTS ------------------------------------------------------


async def test_drop_backup_if_exists_skips_a_missing_backup_with_or_without_in(
    client: Any, tmp_path: Path
) -> None:
    """With IN it said "dropped" and recorded a completed job claiming so."""
    await app_backup(client)
    for where in ("", " IN 'nightly'", " IN 'never_written'"):
        [result] = await ok(client, f"DROP BACKUP IF EXISTS '{MISSING}'{where}")
        assert result["rows"] == [], where
        assert result["message"] == f"Backup '{MISSING}' does not exist, skipped", where
    assert await drop_jobs(client) == []
    assert not (tmp_path / "backups" / "never_written").exists()


async def test_a_backup_dropped_meanwhile_is_skipped_and_its_job_says_so(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    """Two drops of one backup queued behind a running job: both found it
    there, the second's job finds it gone and says so rather than "dropped"."""
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    b = await app_backup(client)
    gate = Gate(state(client))
    faults.register("backup.before_object", gate)
    await ok(client, "BACKUP DATABASE app TO 'elsewhere' WITH (detached = true)")
    await gate.reach()
    ids = [(await rows(client, f"DROP BACKUP IF EXISTS '{b['backup_id']}' IN 'nightly' "
                               "WITH (detached = true)"))[0]["job_id"] for _ in range(2)]
    gate.opened.set()
    first, second = [await wait_job(client, i) for i in ids]
    assert first["status"] == second["status"] == "completed"
    assert first["result"]["bytes_freed"] > 0 and "skipped" not in first["result"]
    assert second["result"] == {"backup_id": b["backup_id"], "bytes_freed": 0, "skipped": True}


# --- detached on every backup statement -----------------------------------------


async def test_drop_backup_takes_detached_and_answers_its_job_at_once(
    client: Any, tmp_path: Path
) -> None:
    """DROP BACKUP had no WITH at all (PARSE_ERROR)."""
    first, second = await app_backup(client), await app_backup(client, 2)
    for text in (f"DROP BACKUP '{first['backup_id']}' WITH (detached = true)",
                 f"DROP BACKUP '{second['backup_id']}' IN 'nightly' WITH (detached = true)"):
        [result] = await ok(client, text)
        assert result["columns"] == ["job_id", "status"]
        job = await wait_job(client, result["rows"][0]["job_id"])
        assert job["job_type"] == "drop_backup" and job["status"] == "completed", job
        assert job["result"]["bytes_freed"] > 0
    assert target_files(tmp_path / "backups" / "nightly")["manifests"] == set()
    assert await rows(client, "SHOW BACKUPS") == []
    message = await err(client, "DROP BACKUP 'bk-x' WITH (label = 'x')", "INVALID_ARGUMENT")
    assert "unknown option 'label' for DROP BACKUP" in message


async def test_start_archiving_takes_detached_and_answers_its_base_job_at_once(
    client: Any,
) -> None:
    """START ARCHIVING refused `detached` (unknown option) and waited for its base."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    [result] = await ok(client, "START ARCHIVING DATABASE app TO 'arch' "
                                "WITH (interval = '100ms', detached = true)")
    assert result["columns"] == ["job_id", "status"]
    job = await wait_job(client, result["rows"][0]["job_id"])
    assert job["job_type"] == "backup" and job["status"] == "completed", job
    await ok(client, "INSERT INTO app.t VALUES (2)")
    deadline = time.monotonic() + 10
    while (archive := (await rows(client, "SHOW ARCHIVES"))[0])["segments"] == 0:
        assert time.monotonic() < deadline, archive
        await asyncio.sleep(0.05)
    assert archive["status"] == "running" and archive["last_error"] is None
    await ok(client, "STOP ARCHIVING DATABASE app")


async def test_a_detached_start_archiving_whose_base_fails_leaves_no_archive(
    client: Any, tmp_path: Path
) -> None:
    """As without detached: the base job fails, and nothing is being archived."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a'); FLUSH TABLE app.t")
    [parquet] = (tmp_path / "data" / "files").glob("*/*.parquet")
    damaged = bytearray(parquet.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    parquet.write_bytes(bytes(damaged))
    [result] = await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (detached = true)")
    job = await wait_job(client, result["rows"][0]["job_id"])
    assert job["status"] == "failed", job
    deadline = time.monotonic() + 5
    while await rows(client, "SHOW ARCHIVES"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


# --- RESTORE TABLE of a table no backup holds ------------------------------------


async def test_restore_table_no_backup_holds_names_the_table(client: Any) -> None:
    """It said "no backup of namespace 'app'" beside a listed backup of app."""
    await app_backup(client)
    message = await err(client, "RESTORE TABLE app.zz FROM 'nightly'", "NOT_FOUND")
    assert message.startswith("no backup in target '") and "holds table 'app.zz'" in message
    message = await err(client, "RESTORE TABLE app.zz FROM 'nightly' "
                                "WITH (as_of = '2000-01-01T00:00:00Z')", "NOT_FOUND")
    assert "no backup taken at or before 2000-01-01T00:00:00Z in target '" in message
    assert message.endswith("holds table 'app.zz'")
    message = await err(client, "RESTORE DATABASE nosuch FROM 'nightly'", "NOT_FOUND")
    assert message.startswith("no backup of namespace 'nosuch' in target '")


# --- contradictions ----------------------------------------------------------------


async def test_restore_if_not_exists_with_replace_is_refused(client: Any) -> None:
    """`replace` was ignored in silence: nothing restored over the existing namespace."""
    await app_backup(client)
    for destination in ("", " AS fresh"):
        message = await err(client, f"RESTORE DATABASE IF NOT EXISTS app FROM 'nightly'"
                                    f"{destination} WITH (replace = true)", "INVALID_ARGUMENT")
        assert "IF NOT EXISTS" in message and "replace = true" in message
    assert await rows(client, "SELECT * FROM system.jobs WHERE job_type = 'restore'") == []
    [result] = await ok(client, "RESTORE DATABASE IF NOT EXISTS app FROM 'nightly' "
                                "WITH (replace = false)")
    assert result["message"] == "Namespace 'app' already exists, nothing restored"
