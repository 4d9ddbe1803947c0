"""Resuming after a crash: what an interrupted backup stored is kept for the next one.

At start-up (startup.register_cleanups) a backup job that died before its
manifest landed, having stored at least one object, keeps its lock in the
target when `[backup] resume_window` is not '0'. The lock goes on protecting the
objects from every prune (DROP BACKUP, keep_last), and the failed job's result
says so: `{"backup_id", "kept_for_resume": true, "kept_until", "objects", "bytes"}`.
The next backup of the same namespace to the same target (of a backup set's:
of all its namespaces, in one set) then sends only what is missing: objects
are content-addressed, so a file stored before the crash is found and not
written again. Once that backup's manifest is written, the kept lock is
released (objects it did not reuse are pruned), whatever kind of backup it
is (backup_writing.recorded). A kept lock whose window has passed is
released by `expire` (at start-up and every minute).
KILL JOB and failures still abandon at once: only a crash keeps."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog import Job
from catalog.errors import CairnError
from storage.backup import Repository

from .history import KEPT
from .repos import repository
from .state import Cairn

log = logging.getLogger("cairn.backup")

EXPIRE_PERIOD = 60.0  # seconds between looks for kept objects past their window


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def keep(cairn: Cairn, job: Job, repo: Repository, backup_id: str) -> bool:
    """Keep an interrupted backup's lock and objects; False (abandon it) when the
    window is 0, the lock is gone or unreadable, or it stored nothing."""
    window = cairn.config.resume_window_seconds
    if window <= 0:
        return False
    lock = next((d for d in repo.list_locks() if d["backup_id"] == backup_id), None)
    if lock is None or "error" in lock:
        return False
    present = repo.list_objects()
    stored = [oid for oid in lock["oids"] if oid in present]
    if not stored:
        return False
    until = _iso(datetime.now(UTC) + timedelta(seconds=window))
    size = sum(present[oid] for oid in stored)
    cairn.kept_jobs.mark(job.job_id)
    job.result = {"backup_id": backup_id, KEPT: True, "kept_until": until,
                  "objects": len(stored), "bytes": size}
    whose = f"namespace {job.namespace!r}" if job.namespace else "its namespaces"
    members = job.cleanup.get("members")
    if job.namespace is None and members:  # a backup set: what it was backing up
        names = sorted(str(m)[len(backup_id) + 1:] for m in members)
        job.result["namespaces"] = names
        whose = f"namespaces {', '.join(repr(n) for n in names)} together"
    job.error_message = (
        f"interrupted by server restart; the {len(stored)} objects ({size} bytes) it stored "
        f"are kept until {until} for the next backup of {whose} to this target")
    log.info("kept %d objects of interrupted backup %s in %s until %s",
             len(stored), backup_id, repo.uri, until)
    return True


def kept(cairn: Cairn) -> list[Job]:
    """Failed backup jobs whose objects are still kept for a resume.

    Every BACKUP asks (release_for), and the job history holds up to [jobs]
    history_max_count records: the history is read once (only the records
    whose bytes name KEPT at all decoded), and after that only the records
    `cairn.kept_jobs` names (state.KeptJobs), each read again: one released
    or trimmed since is named no more."""
    ids = cairn.kept_jobs.read()
    if ids is None:
        marker = KEPT.encode()
        jobs = [Job.loads(raw) for _, raw in cairn.catalog.scan_raw(Job.FAMILY) if marker in raw]
    else:
        jobs = [j for j in (cairn.catalog.get(Job, i) for i in sorted(ids)) if j is not None]
    found = [j for j in jobs if _is_kept(j)]
    cairn.kept_jobs.store({j.job_id for j in found})
    return found


def _is_kept(job: Job) -> bool:
    return job.job_type == "backup" and isinstance(job.result, dict) and bool(job.result.get(KEPT))


def _covered(job: Job, namespaces: set[str]) -> bool:
    """Whether a backup of `namespaces` serves the kept job: one of its
    namespace, or of every namespace of a kept backup set (BACKUP DATABASE a, b
    or ALL: it named none, and nothing but the window released it)."""
    if job.namespace is not None:
        return job.namespace in namespaces
    held = job.result.get("namespaces")
    return isinstance(held, list) and bool(held) and set(held) <= namespaces


def _release(cairn: Cairn, job: Job, repo: Repository, **why: Any) -> int:
    """Remove the kept lock (and what only it held) from the target, and say
    so on the job's row: kept in memory while the data directory refuses
    writes (Catalog.keep), as the lock is gone whatever the disk says (the
    row read `kept_for_resume: true` for a lock no longer there)."""
    freed = repo.abandon(str(job.result["backup_id"]))
    job.result = {**job.result, KEPT: False, **why}
    cairn.catalog.keep(job)
    return freed


def release_for(cairn: Cairn, repo: Repository, namespaces: set[str], by_job: str) -> None:
    """After a backup of `namespaces` into `repo` succeeded (backup_writing.recorded):
    the kept objects of earlier interrupted backups of them there have served;
    release their locks."""
    for job in kept(cairn):
        if job.target == repo.uri and _covered(job, namespaces):
            freed = _release(cairn, job, repo, resumed_by=by_job)
            log.info("released kept objects of %s after backup job %s (%d bytes freed)",
                     job.job_id, by_job, freed)


def expire(cairn: Cairn, now: datetime | None = None) -> int:
    """Release kept objects whose window has passed; returns how many locks went."""
    now = now or datetime.now(UTC)
    released = 0
    for job in kept(cairn):
        until = datetime.fromisoformat(str(job.result["kept_until"]).replace("Z", "+00:00"))
        if until > now:
            continue
        try:
            freed = _release(cairn, job, repository(cairn, str(job.target)), expired=True)
        except CairnError as exc:  # the target is unreachable: try again later
            log.warning("cannot release kept objects of %s: %s", job.job_id, exc.message)
            continue
        released += 1
        log.info("kept objects of %s expired (%d bytes freed)", job.job_id, freed)
    return released


async def expire_loop(cairn: Cairn, period: float = EXPIRE_PERIOD) -> None:
    """Forever: `expire` now and then (first at start-up)."""
    while True:
        try:
            await cairn.run(expire, cairn)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiring kept backup objects failed")
        await asyncio.sleep(period)
