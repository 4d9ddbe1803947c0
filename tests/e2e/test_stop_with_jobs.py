"""SIGTERM while jobs run: the server cancels them, says so in their rows, and
stops at once.

A client waiting on a job that does not end soon (here a paused BACKUP) held
the stop for aiohttp's shutdown timeout (~2 minutes), and the schedules went
on starting backups after the log said 'stopping'."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any


def test_sigterm_cancels_a_paused_backup_and_stops_within_seconds(
    server_process: Any, tmp_path: Path
) -> None:
    srv = server_process(env={"CAIRN_FAULTS": "backup.snapshot_taken:sleep=1"})
    status, body = srv.post("CREATE NAMESPACE app; CREATE TABLE app.t (id INT, v TEXT); "
                            "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t; "
                            "CREATE NAMESPACE small; CREATE TABLE small.t (id INT); "
                            "CREATE SCHEDULE s FOR BACKUP DATABASE small TO 'sched' EVERY '1s'")
    assert status == 200, body
    answer: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: answer.update(r=srv.post("BACKUP DATABASE app TO 'nightly'")))
    waiter.start()
    job_id = None
    for _ in range(200):
        _, body = srv.post("SELECT job_id FROM system.jobs WHERE namespace = 'app' "
                           "AND job_type = 'backup' AND status = 'running'")
        if body["results"][0]["rows"]:
            job_id = body["results"][0]["rows"][0]["job_id"]
            break
        time.sleep(0.05)
    assert job_id is not None
    status, body = srv.post(f"PAUSE JOB '{job_id}'")
    assert status == 200, body
    # PAUSE waits up to 5 s for the job to park; on a loaded machine it can
    # answer `running` with the pause still asked for: the job parks later.
    if body["results"][0]["rows"][0]["status"] != "paused":
        assert body["results"][0]["rows"][0]["status"] == "running", body
        for _ in range(600):
            _, body = srv.post(f"SELECT status FROM system.jobs WHERE job_id = '{job_id}'")
            if body["results"][0]["rows"][0]["status"] == "paused":
                break
            time.sleep(0.1)
    assert body["results"][0]["rows"][0]["status"] == "paused", body

    assert srv.proc is not None
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    assert time.monotonic() - started < 10
    waiter.join(10)
    status, body = answer["r"]
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    # The server stopped it, and says so (it read as a KILL JOB: "operation cancelled").
    assert body["error"]["message"] == "cancelled: the server stopped (SIGTERM)", body
    log = srv.log()
    after = log[log.index("stopping"):]
    assert "job_started" not in after, after
    assert "Traceback" not in log
    again = server_process()
    status, body = again.post("SELECT status, error_message FROM system.jobs "
                              f"WHERE job_id = '{job_id}'")
    assert body["results"][0]["rows"] == [
        {"status": "cancelled", "error_message": "cancelled: the server stopped (SIGTERM)"}]
