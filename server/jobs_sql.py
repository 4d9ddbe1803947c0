"""SHOW JOBS, SHOW JOB, KILL JOB (= CANCEL JOB), PAUSE JOB and RESUME JOB.

A role-user sees only the jobs it started (SHOW JOB of another user's job is
NOT_FOUND, as if it did not exist); the control statements are admin-only."""

from __future__ import annotations

from typing import Any

from catalog import Job
from catalog.errors import NotFound
from sqlgrammar.ast import KillJob, PauseJob, ResumeJob, ShowJob, ShowJobs

from . import visibility
from .dispatch import Routes
from .result import Result
from .state import Cairn, Session

routes = Routes()

# system.jobs' columns, as SHOW JOBS and SHOW JOB answer them.
COLUMNS = [
    ("job_id", "TEXT"), ("job_type", "TEXT"), ("status", "TEXT"), ("namespace", "TEXT"),
    ("target", "TEXT"), ("backup_id", "TEXT"), ("statement", "TEXT"), ("user_id", "TEXT"),
    ("created_at", "TIMESTAMP"), ("started_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"),
    ("fraction_completed", "DOUBLE"), ("files_done", "BIGINT"), ("files_total", "BIGINT"),
    ("bytes_done", "BIGINT"), ("bytes_total", "BIGINT"), ("rows", "BIGINT"),
    ("result", "JSON"), ("error_message", "TEXT"), ("node_id", "TEXT"),
    ("waiting_for", "TEXT"),
]
STATUS = [("job_id", "TEXT"), ("status", "TEXT")]


def _row(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name, _ in COLUMNS}


def _visible(session: Session, job: Job) -> bool:
    return session.is_admin or job.user_id == session.user_id


@routes.handles(ShowJobs, role="user")
async def show_jobs(cairn: Cairn, session: Session, stmt: ShowJobs) -> Result:
    """Newest first (job ids are time-ordered)."""

    def work() -> list[dict[str, Any]]:
        jobs = [j for j in cairn.catalog.scan(Job) if _visible(session, j)]
        jobs.sort(key=lambda j: (j.created_at, j.job_id), reverse=True)
        return visibility.rows_for(cairn.config, session, "jobs", [_row(j) for j in jobs])

    return Result.of_rows(COLUMNS, await cairn.run(work))


@routes.handles(ShowJob, role="user")
async def show_job(cairn: Cairn, session: Session, stmt: ShowJob) -> Result:
    job = await cairn.run(cairn.catalog.get, Job, stmt.job_id)
    if job is None or not _visible(session, job):
        raise NotFound(f"Job '{stmt.job_id[:100]}' does not exist")
    return Result.of_rows(COLUMNS, visibility.rows_for(cairn.config, session, "jobs", [_row(job)]))


def _status(job: Job) -> Result:
    return Result.of_rows(STATUS, [{"job_id": job.job_id, "status": job.status}],
                          message=f"Job '{job.job_id}' {job.status}")


@routes.handles(KillJob, role="admin")
async def kill_job(cairn: Cairn, session: Session, stmt: KillJob) -> Result:
    """A job the kill stopped past its point of no return is `failed`, its
    message saying what stays (a BACKUP's: "backup '…' is complete, but …")."""
    job = await cairn.jobs.kill(stmt.job_id)
    if job.status != "failed":
        return _status(job)
    return Result.of_rows(STATUS, [{"job_id": job.job_id, "status": job.status}],
                          message=f"Job '{job.job_id}' failed: {job.error_message}")


@routes.handles(PauseJob, role="admin")
async def pause_job(cairn: Cairn, session: Session, stmt: PauseJob) -> Result:
    return _status(await cairn.jobs.pause(stmt.job_id))


@routes.handles(ResumeJob, role="admin")
async def resume_job(cairn: Cairn, session: Session, stmt: ResumeJob) -> Result:
    return _status(await cairn.jobs.resume(stmt.job_id))
