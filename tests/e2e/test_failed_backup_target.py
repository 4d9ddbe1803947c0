"""A BACKUP that fails or is cancelled into a target that was not there
leaves no target behind (contract §5: files it alone wrote are removed)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from server import faults
from tests.helpers import Gate, err, ok, sql, state, wait_job


async def damaged_table(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE rot; CREATE TABLE rot.t (id INT PRIMARY KEY, v TEXT); "
                     "INSERT INTO rot.t VALUES (1, 'a'); FLUSH TABLE rot.t")
    [parquet] = (tmp_path / "data" / "files").glob("*/*.parquet")
    damaged = bytearray(parquet.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    parquet.write_bytes(bytes(damaged))


@pytest.mark.parametrize("options", ["", " WITH (encryption_passphrase = 'pw')"])
async def test_a_failed_first_backup_leaves_no_target(
    client: Any, tmp_path: Path, options: str
) -> None:
    """It left config.json, empty locks/ tmp/ prunes/ objects/xx/ (and a key
    file), and SHOW BACKUPS IN the target then listed nothing, not NOT_FOUND."""
    await damaged_table(client, tmp_path)
    await err(client, f"BACKUP DATABASE rot TO 'newtarget'{options}", "BACKUP_INVALID")
    assert not (tmp_path / "backups" / "newtarget").exists()
    await err(client, "SHOW BACKUPS IN 'newtarget'", "NOT_FOUND")


async def test_a_failed_backup_keeps_a_target_with_backups(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1); BACKUP DATABASE app TO 'nightly'")
    await damaged_table(client, tmp_path)
    await err(client, "BACKUP DATABASE rot TO 'nightly'", "BACKUP_INVALID")
    [row] = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert row["namespace"] == "app"


async def test_a_cancelled_first_backup_leaves_no_target(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")
    gate = Gate(state(client))
    faults.register("backup.before_object", gate)
    [result] = await ok(client, "BACKUP DATABASE app TO 'newtarget' WITH (detached = true)")
    job_id = result["rows"][0]["job_id"]
    await gate.reach()
    assert (tmp_path / "backups" / "newtarget" / "config.json").exists()
    status, _ = await sql(client, f"KILL JOB '{job_id}'")
    assert status == 200
    assert (await wait_job(client, job_id))["status"] == "cancelled"
    assert not (tmp_path / "backups" / "newtarget").exists()


def test_a_first_backup_the_server_died_in_leaves_no_target_after_restart(
    tmp_path: Path, server_process: Any
) -> None:
    """With resume_window = "0" the start-up clean-up abandons it: its lock and
    objects went, and its config.json, empty folders and the target stayed."""
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\nresume_window = "0"\n')
    srv = server_process(config=config, env={"CAIRN_FAULTS": "backup.before_manifest:kill"})
    for text in ("CREATE NAMESPACE app", "CREATE TABLE app.t (id INT PRIMARY KEY)",
                 "INSERT INTO app.t VALUES (1)", "FLUSH TABLE app.t"):
        status, body = srv.post(text)
        assert status == 200, body
    with contextlib.suppress(ConnectionError):  # it dies before the manifest
        srv.post("BACKUP DATABASE app TO 'newtarget'")
    assert srv.proc is not None and srv.proc.wait(30) != 0
    assert (tmp_path / "backups" / "newtarget" / "config.json").exists()
    again = server_process(tmp_path / "data", config=config)
    _, body = again.post("SELECT status FROM system.jobs WHERE job_type = 'backup'")
    assert body["results"][0]["rows"] == [{"status": "failed"}]
    assert not (tmp_path / "backups" / "newtarget").exists()
