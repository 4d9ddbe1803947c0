"""Jobs a dead process left behind: marked failed at start-up, and what they
half-wrote undone by their job type's registered clean-up (backups.py).

A clean-up that cannot reach its target (an object store that does not
answer, a disk not mounted yet) is not done: it stays pending on the job's
row (`cleanup["pending"]`, the reason), the job's error message says so, and
it is tried again at every start and every minute (`retry_loop`) until it is
done. Thrown away, as it was, the lock of an interrupted backup stayed in its
target for good, and every object it names with it. A job with a pending
clean-up is never trimmed from the history (history.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from catalog import Job, utcnow
from catalog.diskerrors import DataDirUnavailable
from catalog.errors import CairnError
from catalog.ids import floor_after

from . import logs
from .history import ACTIVE, PENDING
from .jobcontext import JobHost

log = logging.getLogger("cairn.jobs")

Cleanup = Callable[[Job], None]
RETRY_PERIOD = 60.0  # seconds between tries of pending clean-ups
INTERRUPTED = "interrupted by server restart"
PENDING_NOTE = "; its clean-up could not be done yet"


class Runner(Protocol):
    cairn: JobHost
    cleanups: dict[str, Cleanup]
    pending: set[str]  # ids of the jobs whose clean-up is pending


def recover(runner: Runner) -> list[Job]:
    """Mark jobs of a dead process failed and undo what they half-wrote; try
    again the clean-ups still pending from an earlier start. Returns the jobs
    marked failed now. Each ends as any job does: a `job_ended` line (a
    WARNING) and a count in /metrics. Its finished_at is the last sign of life
    its row has (`alive_at`: its last progress update or status change), not
    this start: the restart time made the whole downtime part of its run; a
    job that never wrote one (it was queued) ends now."""
    failed = []
    catalog = runner.cairn.catalog
    newest = ""
    for job in catalog.scan(Job):
        newest = max(newest, job.job_id)
        if job.status in ACTIVE:
            job.status = "failed"
            job.finished_at = job.alive_at or utcnow()
            job.error_message = INTERRUPTED
            job.waiting_for = None  # it waits for nothing now (a lock's wait: lockset.py)
            clean(runner, job)
            runner.cairn.metrics.job_ended(job, None)
            logs.job_ended(job, None)
            failed.append(job)
        elif job.cleanup.get(PENDING):
            clean(runner, job)
    floor_after(newest)  # new job ids never sort under old ones (clock set back)
    return failed


def clean(runner: Runner, job: Job, quiet: bool = False) -> bool:
    """Run the job's clean-up and record how it went: done (the row's cleanup
    emptied) or pending (kept, with the reason). True when done. `quiet`: a
    clean-up still pending is not a WARNING again (the minute's retries)."""
    cleanup = runner.cleanups.get(job.job_type)
    was_pending = bool(job.cleanup.get(PENDING))
    if was_pending and job.error_message:  # the message as it was before the note
        job.error_message = job.error_message.split(PENDING_NOTE, 1)[0]
    reason = None
    if cleanup is not None:
        try:
            cleanup(job)
        except CairnError as exc:  # the target cannot be reached: an operator's matter
            reason = exc.message
        except Exception as exc:  # cleanup must not stop the server starting
            log.exception("cleanup of interrupted job %s failed", job.job_id)
            reason = f"{type(exc).__name__}: {exc}"
    if reason is None:
        job.cleanup = {}
    else:
        # `cleanup` may have moved on (a kept lock recorded): keep what it says.
        job.cleanup = {**job.cleanup, PENDING: reason}
        job.error_message = (f"{job.error_message or INTERRUPTED}{PENDING_NOTE} ({reason}); "
                             "it is tried again at every start and every minute")
        runner.pending.add(job.job_id)
        (log.debug if quiet and was_pending else log.warning)(
            "clean-up of interrupted job %s is pending, tried again every minute: %s",
            job.job_id, reason)
    # Its row first: one the disk refuses (full) stays pending, tried again
    # (it was taken for done, its row on disk still saying pending).
    runner.cairn.catalog.put(job)
    if reason is None:
        if was_pending:
            log.info("pending clean-up of interrupted job %s done", job.job_id)
        runner.pending.discard(job.job_id)
    return reason is None


def retry_pending(runner: Runner) -> int:
    """Try every pending clean-up again; returns how many are done now. Only
    start-up runs clean-ups, so the ones it left pending are all there are."""
    done = 0
    for job_id in sorted(runner.pending):
        job = runner.cairn.catalog.get(Job, job_id)
        if job is None or not job.cleanup.get(PENDING):
            runner.pending.discard(job_id)
        elif clean(runner, job, quiet=True):
            done += 1
    return done


async def retry_loop(runner: Runner, period: float = RETRY_PERIOD) -> None:
    """Forever: pending clean-ups tried again every `period` seconds."""
    said: str | None = None  # the data directory's refusal, said once
    while True:
        await asyncio.sleep(period)
        try:
            await runner.cairn.run(retry_pending, runner)
            said = None
        except asyncio.CancelledError:
            raise
        except DataDirUnavailable as exc:  # a full disk: one line, not a trace a period
            if said is None:
                log.warning("retrying pending clean-ups waits until the data directory takes "
                            "writes again: %s", exc.message)
            said = exc.message
        except Exception:
            log.exception("retrying pending clean-ups failed")
