"""How a job's ending reads where an operator watches (system.jobs, the log's
job_ended line, /metrics): a VERIFY that finds damage, a job a crash
interrupted, a job the server's own stop cancelled."""

from __future__ import annotations

import logging
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.config import Config
from tests.helpers import fill, ok, rows

from ..archive.test_archive_forged import plant_after_end
from ..archive.test_archiving import archive_two_rows
from .test_backup_crash import fill as fill_process
from .test_backup_crash import job, wait_for_progress, write_config


async def metric(client: Any, name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def job_ended(caplog: pytest.LogCaptureFixture, job_id: str) -> logging.LogRecord:
    (line,) = [r for r in caplog.records if r.name == "cairn.jobs"
               and "job_ended" in r.getMessage() and job_id in r.getMessage()]
    return line


async def test_a_verify_that_finds_a_corrupt_backup_says_so_beside_its_row(
        client: Any, cairn_config: Config, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cairn.jobs")
    await fill(client, files=2)
    backup_id = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    good = (await ok(client, f"VERIFY BACKUP '{backup_id}' IN 'nightly'"))[0]
    assert good["rows"][0]["is_valid"] is True
    objects = sorted((Path(cairn_config.backup_roots[0]) / "nightly" / "objects").rglob("*"))
    damaged = [p for p in objects if p.is_file()]
    for path in damaged:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    # The statement's answer is as it was: its row says is_valid = false.
    (bad,) = await ok(client, f"VERIFY BACKUP '{backup_id}' IN 'nightly'")
    row = bad["rows"][0]
    assert row["is_valid"] is False and len(row["errors"]) == len(damaged)
    assert bad["message"] == f"Backup '{backup_id}' is INVALID"
    jobs = await rows(client, "SELECT job_id, status, error_message FROM system.jobs "
                              "WHERE job_type = 'verify' ORDER BY job_id")
    assert [(j["status"], j["error_message"]) for j in jobs[:1]] == [("completed", None)]
    last = jobs[1]
    # The verification ran to its end: completed, and its error names the problem.
    assert last["status"] == "completed"
    assert last["error_message"].startswith(f"backup '{backup_id}' in target '"), last
    assert last["error_message"].endswith(
        f"' is not valid: {len(damaged)} error(s); first: {row['errors'][0]}"), last
    assert job_ended(caplog, jobs[0]["job_id"]).levelno == logging.INFO
    line = job_ended(caplog, last["job_id"])
    assert line.levelno == logging.WARNING and "status=completed" in line.getMessage()
    assert "is not valid" in line.getMessage()
    assert await metric(client, "cairn_verify_invalid_total", kind="backup") == 1
    assert await metric(client, "cairn_verify_invalid_total", kind="archive") == 0
    assert await metric(client, "cairn_jobs_total", type="verify", status="completed") == 2


async def test_a_verify_that_finds_a_damaged_archive_says_so_beside_its_row(
        client: Any, cairn_config: Config) -> None:
    await archive_two_rows(client)
    path, _, _ = plant_after_end(Path(cairn_config.backup_roots[0]), b"not a segment")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False
    (job,) = await rows(client, "SELECT status, error_message FROM system.jobs "
                                "WHERE job_type = 'verify'")
    assert job["status"] == "completed"
    assert job["error_message"].startswith("archive of namespace 'app' in target '")
    assert f"is not valid: {len(report['errors'])} error(s); first: " in job["error_message"]
    assert path.name in job["error_message"]
    assert await metric(client, "cairn_verify_invalid_total", kind="archive") == 1


def scraped(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def test_a_job_a_crash_interrupted_ends_logged_counted_and_not_at_the_restart(
        tmp_path: Path, server_process: Any) -> None:
    data = tmp_path / "data"
    srv = server_process(data, config=write_config(tmp_path, 1_000_000))
    fill_process(srv, statements=2)
    _, body = srv.post("BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = body["results"][0]["rows"][0]["job_id"]
    wait_for_progress(srv, job_id)
    srv.kill()
    killed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    time.sleep(1.5)  # the server is down: none of this is the job's run

    again = server_process(data, config=write_config(tmp_path, 0))
    failed = job(again, job_id)
    assert failed["status"] == "failed"
    # (with "; the N objects … are kept …" when it had stored some before the kill)
    assert failed["error_message"].startswith("interrupted by server restart"), failed
    # Its last progress update, not the restart (which counted the downtime as its run).
    assert failed["started_at"] < failed["finished_at"] <= killed_at, (failed, killed_at)
    assert scraped(again.url, "cairn_jobs_total", type="backup", status="failed") == 1
    assert again.stop() == 0
    log = again.log()
    (line,) = [x for x in log.splitlines() if "job_ended" in x and job_id in x]
    assert " WARNING " in line and "status=failed" in line, line
    assert 'error="interrupted by server restart' in line, line
