"""A job's progress notice says what the job waits for (system.jobs'
`waiting_for`): a RESTORE ... replace whose install waits for a busy table's
lock read "running 99%" and nothing more, for as long as the statement on
that table ran."""

from __future__ import annotations

from catalog import Job
from server.pgwire.results import progress_text


def test_a_notice_names_what_the_job_waits_for() -> None:
    job = Job(job_id="job-1", job_type="restore", status="running", fraction_completed=0.99,
              files_done=2, files_total=2, bytes_done=2048, bytes_total=2048,
              waiting_for="the write lock of table app.b")
    assert progress_text(job) == ("restore job-1: running 99%, 2/2 files, 2.0 KB of 2.0 KB, "
                                  "waiting for the write lock of table app.b")
    job.waiting_for = None
    assert progress_text(job) == "restore job-1: running 99%, 2/2 files, 2.0 KB of 2.0 KB"
