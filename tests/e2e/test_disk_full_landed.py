"""A job whose data directory fills after its point of no return: a BACKUP
whose manifest landed, a RESTORE whose install committed, a DROP BACKUP whose
manifest went. Each was answered 503 and left `failed`, and with space back
(RocksDB's own resume, no restart) nothing recorded what it did: the backup
stayed in its target unrecorded (RESTORE newest 409 blaming "a copy of this
data directory"), the restored namespace stayed under a failed job, the
dropped backup stayed in system.backups (VERIFY 404). Now the job ends as its
work did, what it did to the catalog is kept in memory while the disk
refuses (read as written), and written once writes work again.

A real full disk: the data directory on a small tmpfs (root, as
tests/storage_backup/test_failures.py), filled until RocksDB refuses writes,
then emptied: RocksDB resumes by itself once 64 MB are free (docs/http.md).
The jobs run in the server (`job_process = "off"`) so that a gate at the
fault point holds each one while the disk fills."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from tests.helpers import Gate, job_row, ok, rows, sql, state
from tests.storage_backup.test_failures import mounted

FS_SIZE = "96m"  # RocksDB resumes with its write buffer's size (64 MB) free


@pytest.fixture
def data_fs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "datafs"
    with mounted([["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs"]], where):
        yield where


@pytest.fixture
def cairn_config(cairn_config: Config, data_fs: Path, request: pytest.FixtureRequest) -> Config:
    cairn_config.storage.data_dir = str(data_fs / "data")
    cairn_config.jobs.job_process = getattr(request, "param", "off")
    return cairn_config


def fill_up(where: Path) -> Path:
    """A file taking every free byte of `where`'s file system."""
    filler = where / "filler"
    with open(filler, "ab", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\1" * size)
    return filler


async def refuse_writes(client: Any, where: Path) -> Path:
    """Fill the data directory's disk until the catalog refuses a write."""
    filler = await asyncio.get_running_loop().run_in_executor(None, fill_up, where)
    big = "z" * (1 << 20)
    for k in range(200):
        status, body = await sql(client, f"INSERT INTO app.pad VALUES ({k}, '{big}')")
        if status == 503:
            assert "no space left on the data directory" in body["error"]["message"], body
            return filler
        assert status == 200, body
    raise AssertionError("the catalog never refused a write")


async def space_back(client: Any, filler: Path) -> None:
    """Free the disk and wait until writes work again (no restart), and
    until what was kept in memory is written."""
    filler.unlink()
    catalog = state(client).catalog
    deadline = time.monotonic() + 60
    while True:
        resp = await client.get("/health")  # a write probe while writes fail
        if resp.status == 200 and not catalog._unsaved:
            return
        assert time.monotonic() < deadline, await resp.text()
        await asyncio.sleep(0.5)


async def setup(client: Any) -> str:
    """A namespace with rows, a pad table to fill the log with, one backup."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "CREATE TABLE app.pad (id BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t SELECT i, 'a' FROM range(100) r(i)")
    return str((await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"])


async def parked(client: Any, point: str, statement: str, where: Path) -> tuple[Any, Path]:
    """`statement` run until its job reaches `point`, the disk filled, the
    job let go: its answer and the filler."""
    gate = Gate(state(client))
    faults.register(point, gate)
    waiting = asyncio.create_task(sql(client, statement))
    await gate.reach()
    try:
        filler = await refuse_writes(client, where)
    finally:
        gate.opened.set()
    return await asyncio.wait_for(waiting, 60), filler


async def recorded(client: Any) -> set[str]:
    return {r["backup_id"] for r in await rows(client, "SELECT backup_id FROM system.backups")}


@pytest.mark.parametrize(("cairn_config", "point"), [
    ("off", "backup.before_record"),
    # In a job process: its last progress, after the manifest, was refused
    # and failed the job (a scheduled backup as the disk filled, no fault).
    ("idle", "backup.after_manifest"),
], indirect=["cairn_config"])
async def test_a_backup_whose_manifest_landed_is_completed_and_recorded(
        client: Any, data_fs: Path, point: str) -> None:
    first = await setup(client)
    (status, body), filler = await parked(client, point, "BACKUP DATABASE app TO 'bk'",
                                          data_fs)
    assert status == 200, body  # was 503 UNAVAILABLE, the job failed, its backup published
    (row,) = body["results"][0]["rows"]
    backup_id = row["backup_id"]
    assert (await job_row(client, row["job_id"]))["status"] == "completed"
    assert await recorded(client) == {first, backup_id}  # read as written while full
    await space_back(client, filler)
    assert await recorded(client) == {first, backup_id}
    # the newest: was 409 "… a copy of this data directory … wrote it"
    restored = await rows(client, "RESTORE DATABASE app FROM 'bk' AS app_r")
    assert restored[0]["backup_id"] == backup_id


async def test_a_backup_set_whose_manifests_landed_is_completed_and_recorded(
        client: Any, data_fs: Path) -> None:
    first = await setup(client)
    await ok(client, "CREATE NAMESPACE app2; CREATE TABLE app2.t (id BIGINT PRIMARY KEY)")
    (status, body), filler = await parked(client, "backup.before_record",
                                          "BACKUP DATABASE app, app2 TO 'bk'", data_fs)
    assert status == 200, body  # was 503, both members published, unrecorded
    members = {r["backup_id"] for r in body["results"][0]["rows"]}
    assert len(members) == 2, body
    await space_back(client, filler)
    assert await recorded(client) == {first, *members}
    restored = await rows(client, "RESTORE DATABASE app FROM 'bk' AS app_r")  # was 409
    assert restored[0]["backup_id"] in members


async def test_keep_last_on_a_full_disk_fails_saying_its_backup_is_complete(
        client: Any, data_fs: Path) -> None:
    first = await setup(client)
    (status, body), filler = await parked(client, "backup.before_record",
                                          "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)",
                                          data_fs)
    assert status == 503, body
    (job,) = await rows(client, "SELECT * FROM system.jobs WHERE job_type = 'backup' "
                                "AND status <> 'completed'")
    backup_id = job["backup_id"]
    assert job["status"] == "failed" and job["result"]["backup_id"] == backup_id, job
    assert body["error"]["message"] == job["error_message"]
    assert job["error_message"].startswith(
        f"backup '{backup_id}' is complete, but keep_last could not drop older ones: no space "
        "left on the data directory"), job
    await space_back(client, filler)
    assert await recorded(client) == {first, backup_id}  # was {first}, for good
    await rows(client, "RESTORE DATABASE app FROM 'bk' AS app_r")  # was 409
    # the next keep_last drops the older one (it left the unrecorded one alone)
    third = (await rows(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)"))[0]
    assert await recorded(client) == {third["backup_id"]}


async def test_a_restore_whose_install_committed_is_completed(
        client: Any, data_fs: Path) -> None:
    backup_id = await setup(client)
    (status, body), filler = await parked(client, "restore.after_install",
                                          "RESTORE DATABASE app FROM 'bk' AS app_r", data_fs)
    assert status == 200, body  # was 503 and `failed`, the namespace restored all the same
    (row,) = body["results"][0]["rows"]
    assert row["backup_id"] == backup_id and row["rows"] == 100, row
    assert (await job_row(client, row["job_id"]))["status"] == "completed"
    await space_back(client, filler)
    assert (await job_row(client, row["job_id"]))["status"] == "completed"
    assert await rows(client, "SELECT count(*) AS n FROM app_r.t") == [{"n": 100}]


async def test_a_drop_whose_manifest_went_is_completed_and_forgotten(
        client: Any, data_fs: Path) -> None:
    first = await setup(client)
    second = (await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"]
    (status, body), filler = await parked(client, "prune.before_delete",
                                          f"DROP BACKUP '{first}'", data_fs)
    assert status == 200, body  # was 503, the backup gone from its target all the same
    assert await recorded(client) == {second}  # was listed, its VERIFY 404
    await space_back(client, filler)
    assert await recorded(client) == {second}
    (job,) = await rows(client, "SELECT status FROM system.jobs WHERE job_type = 'drop_backup'")
    assert job == {"status": "completed"}
    assert {r["backup_id"] for r in await rows(client, "SHOW BACKUPS IN 'bk'")} == {second}


async def test_a_flush_whose_files_were_installed_is_completed(
        client: Any, data_fs: Path) -> None:
    await setup(client)
    await ok(client, "INSERT INTO app.t VALUES (500, 'buffered')")
    (status, body), filler = await parked(client, "flush.after_install", "FLUSH TABLE app.t",
                                          data_fs)
    assert status == 200, body  # was 503 and `failed`, its file installed, the buffer empty
    (job,) = await rows(client, "SELECT status FROM system.jobs WHERE job_type = 'flush'")
    assert job == {"status": "completed"}
    await space_back(client, filler)
    (table,) = await rows(client, "SELECT buffered_rows, flushed_rows FROM system.tables "
                                  "WHERE table_name = 't'")
    assert table == {"buffered_rows": 0, "flushed_rows": 101}, table


async def test_flush_all_refused_at_a_later_table_says_which_it_flushed(
        client: Any, data_fs: Path, cairn_config: Config) -> None:
    """FLUSH ALL TABLES installs its first table, then the disk fills: the
    second is refused. The answer and the job said only the refusal (503,
    "no space left …"), as if nothing was flushed, while the first table's
    files were installed and its buffer empty."""
    await setup(client)
    await ok(client, "CREATE NAMESPACE f; CREATE TABLE f.a (id BIGINT PRIMARY KEY); "
                     "CREATE TABLE f.b (id BIGINT PRIMARY KEY); "
                     "CREATE TABLE f.c (id BIGINT PRIMARY KEY); "
                     "INSERT INTO f.a VALUES (1), (2); INSERT INTO f.b VALUES (3); "
                     "INSERT INTO f.c VALUES (4)")
    (status, body), filler = await parked(client, "flush.after_install",
                                          "FLUSH ALL TABLES IN f", data_fs)
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    message = body["error"]["message"]
    assert message.startswith(f"no space left on the data directory '{cairn_config.data_dir}'")
    assert message.endswith("; it had flushed 1 of its 3 tables first (f.a: 2 rows to 1 file(s), "
                            "installed); the rows of the others stay buffered"), message
    (job,) = await rows(client, "SELECT status, error_message, rows FROM system.jobs "
                                "WHERE job_type = 'flush' AND namespace = 'f'")
    assert job == {"status": "failed", "error_message": message, "rows": 2}, job
    filler.unlink()  # (no wait for writes: what it says is read while full)
    tables = await rows(client, "SELECT table_name, buffered_rows, flushed_rows FROM "
                                "system.tables WHERE namespace = 'f' ORDER BY table_name")
    assert tables == [{"table_name": "a", "buffered_rows": 0, "flushed_rows": 2},
                      {"table_name": "b", "buffered_rows": 1, "flushed_rows": 0},
                      {"table_name": "c", "buffered_rows": 1, "flushed_rows": 0}], tables
