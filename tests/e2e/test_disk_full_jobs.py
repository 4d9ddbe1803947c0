"""Jobs, archiving and automatic flushes on a data directory whose disk
refuses writes (test_disk_full.py makes the refusal): they fail with the
reason, say so where they are read, and keep no trace in the log. Where a
Python write of the data directory is the one refused, ENOSPC is injected at
that write (the Parquet writer)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from typing import Any

import pytest

from catalog.diskerrors import from_oserror
from server import faults
from server.config import Config
from server.pgwire.errors import sqlstate
from storage import files
from tests.e2e.test_disk_full import refuse_writes
from tests.helpers import ok, sql, state


async def test_job_and_archive_failed_on_a_refusing_catalog_say_so(
    client: Any, cairn_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """A job that ends while the catalog refuses writes reads `failed` with the
    reason (its row stayed `running`), and archiving keeps trying, its status
    `failed` with the reason (its loop died in its own failure handler, the
    archive said `running`, last_error null). The job is a RESTORE whose
    install the full disk refuses (a BACKUP whose manifest landed, as this
    test had it, now completes: test_disk_full_landed.py)."""
    caplog.set_level(logging.WARNING, "cairn.archive")
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a'); "
                     "CREATE NAMESPACE arc; CREATE TABLE arc.t (id BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, "START ARCHIVING DATABASE arc TO 'arch' WITH (interval = '300ms')")
    parked = threading.Event()
    go = threading.Event()

    def park(info: dict[str, Any]) -> None:
        parked.set()
        go.wait(10)

    await ok(client, "BACKUP DATABASE app TO 'bk'")
    faults.register("restore.before_install", park)
    job_id = (await ok(client, "RESTORE DATABASE app FROM 'bk' AS app_r "
                               "WITH (detached = true)"))[0]["rows"][0]["job_id"]
    await asyncio.get_running_loop().run_in_executor(None, parked.wait, 10)
    await refuse_writes(client, "arc.t")
    go.set()
    where = f"the data directory '{cairn_config.data_dir}'"
    deadline = time.monotonic() + 15
    while True:
        (job,) = (await ok(client, f"SELECT status, error_message FROM system.jobs "
                                   f"WHERE job_id = '{job_id}'"))[0]["rows"]
        (arc,) = (await ok(client, "SHOW ARCHIVES"))[0]["rows"]
        tries = [r for r in caplog.records if r.getMessage().startswith("archiving arc failed")]
        if job["status"] != "running" and arc["status"] == "failed" and len(tries) >= 2:
            break
        assert time.monotonic() < deadline, (job, arc, len(tries))
        await asyncio.sleep(0.2)
    assert job["status"] == "failed" and where in job["error_message"], job
    assert where in arc["last_error"], arc
    shown = (await ok(client, f"SHOW JOB '{job_id}'"))[0]["rows"][0]
    assert shown["status"] == "failed"
    assert not [r for r in caplog.records if r.exc_info], "no trace for a full disk"
    assert state(client).catalog.write_error is not None


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Parquet data file write of the server meets a full disk."""
    def write(self: Any, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files._HashingWriter, "write", write)


async def test_flush_on_a_full_disk_is_unavailable_without_a_trace(
    client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """FLUSH (BACKUP's spill and RESTORE's fetch the same way) answered 500
    "internal error: OSError: [Errno 28]", its job logged "failed with a bug"."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    full_disk(monkeypatch)
    status, body = await sql(client, "FLUSH TABLE app.t")
    message = f"no space left on the data directory '{cairn_config.data_dir}' " \
              "([Errno 28] No space left on device)"
    assert (status, body["error"]) == (503, {**body["error"], "code": "UNAVAILABLE",
                                             "message": message}), body
    (job,) = (await ok(client, "SELECT status, error_message FROM system.jobs "
                               "WHERE job_type = 'flush'"))[0]["rows"]
    assert job == {"status": "failed", "error_message": message}
    assert not [r for r in caplog.records if r.exc_info or "bug" in r.getMessage()]
    assert sqlstate(from_oserror(cairn_config.data_dir, OSError(errno.ENOSPC, ""))) == "53100"


async def test_automatic_flush_on_a_full_disk_backs_off(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It tried every second, each time a failed job and a trace; now after
    2, 4, 8, … seconds (at most a minute apart)."""
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.t (id BIGINT PRIMARY KEY) WITH (flush_rows = 1)")
    full_disk(monkeypatch)
    await ok(client, "INSERT INTO app.t VALUES (1), (2)")
    await asyncio.sleep(5.5)  # tries at ~1 s and ~3 s (every second before: 5)
    (row,) = (await ok(client, "SELECT count(*) AS n FROM system.jobs "
                               "WHERE job_type = 'flush' AND status = 'failed'"))[0]["rows"]
    assert 1 <= row["n"] <= 2, row
    assert not [r for r in caplog.records if r.exc_info], "no trace for a full disk"




async def test_start_archiving_whose_base_the_disk_refuses_leaves_no_running_archive(
    client: Any, cairn_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """START ARCHIVING's base fails at its record, the data directory refusing
    writes, and so does the removal of its archive: START answers 503 and the
    archive reads `failed` with the reason. It read `running` for good, with
    no segment ever shipped, and START again was 409 ALREADY_EXISTS; it may
    be run again (here the disk still refuses: 503 again)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a'); "
                     "CREATE NAMESPACE other; CREATE TABLE other.t (id BIGINT PRIMARY KEY, v TEXT)")
    parked = threading.Event()
    go = threading.Event()

    def park(info: dict[str, Any]) -> None:
        parked.set()
        go.wait(60)

    faults.register("backup.before_record", park)
    starting = asyncio.create_task(sql(client, "START ARCHIVING DATABASE app TO 'arc'"))
    await asyncio.get_running_loop().run_in_executor(None, parked.wait, 60)
    await refuse_writes(client, "other.t")
    go.set()
    where = f"the data directory '{cairn_config.data_dir}'"
    for again in (False, True):
        status, body = await (sql(client, "START ARCHIVING DATABASE app TO 'arc'") if again
                              else starting)
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), (again, body)
        assert where in body["error"]["message"], body
        (arc,) = (await ok(client, "SHOW ARCHIVES"))[0]["rows"]
        assert arc["status"] == "failed" and arc["segments"] == 0, arc
        assert arc["last_error"].startswith("its base backup failed: "), arc
        assert where in arc["last_error"], arc
    assert not [r for r in caplog.records if r.exc_info], "no trace for a full disk"
