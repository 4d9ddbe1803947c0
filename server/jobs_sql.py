"""KILL JOB."""

from __future__ import annotations

from sqlgrammar.ast import KillJob

from .result import Result
from .state import Cairn, Session


async def kill_job(cairn: Cairn, session: Session, stmt: KillJob) -> Result:
    job = await cairn.jobs.kill(stmt.job_id)
    return Result.of_rows(
        [("job_id", "TEXT"), ("status", "TEXT")],
        [{"job_id": job.job_id, "status": job.status}],
        message=f"Job '{job.job_id}' {job.status}",
    )


HANDLERS = {KillJob: kill_job}
