"""This server's side of a backup still being written (storage/backup/writing.py
is the target's). From the moment a backup's lock goes to its job's end, its
manifest is in the target with no lock, and its record may not be in the
catalog yet: a drop then (DROP BACKUP, another backup's keep_last) forgot no
record, and the job's `catalog.put` brought the dropped backup back into
system.backups. So a drop refuses (keep_last skips) a backup whose job here
has not recorded it yet, and a job that has recorded its backup looks again
at the target: one dropped meanwhile by what cannot see this server's jobs
(another server's DROP BACKUP) is forgotten again, and the job says so."""

from __future__ import annotations

import logging

from catalog import Backup
from catalog.errors import CairnError
from storage.backup import Repository
from storage.backup.drops import drop_plan
from storage.backup.writing import lock_ids, still_writing

from . import resume
from .jobcalls import job_call
from .jobs import JobContext
from .state import Cairn

log = logging.getLogger("cairn.backup")


def running_backups(cairn: Cairn, but: str | None = None) -> dict[str, str]:
    """backup id (a backup set's id) -> job id, of this server's backup jobs
    that have not ended, but the job `but` (the one asking)."""
    return {job.backup_id: job.job_id for job in cairn.jobs.live()
            if job.job_type == "backup" and job.backup_id and job.job_id != but}


def refuse_unrecorded(cairn: Cairn, ctx: JobContext, repo: Repository, backup_id: str) -> None:
    """StillWriting (409) while the job here writing `backup_id` (or its set)
    has not put its record in the catalog. Call once its manifest was found:
    a job ended by then has put it, and the drop's `forget` takes it."""
    running = running_backups(cairn, ctx.job_id)
    for lock_id in sorted(lock_ids(backup_id)):
        job_id = running.get(lock_id)
        if job_id is None:
            continue
        record = cairn.catalog.get(Backup, backup_id)
        if record is None or record.target != repo.uri:
            raise still_writing(backup_id, repo.uri, job_id=job_id)


def plan_drop(cairn: Cairn, ctx: JobContext, repo: Repository,
              backup_id: str) -> tuple[str, set[str]]:
    """`drop_plan` (its namespace and objects; StillWriting while its lock is
    in the target), refused as well while a job here writing it has not
    recorded it: before (naming the job) and after (its lock gone meanwhile)."""
    refuse_unrecorded(cairn, ctx, repo, backup_id)
    plan = job_call(ctx, repo.target.kind, drop_plan, repo, backup_id)
    refuse_unrecorded(cairn, ctx, repo, backup_id)
    return plan


def forget_dropped(cairn: Cairn, ctx: JobContext, repo: Repository,
                   backup_ids: list[str]) -> list[str]:
    """After the job put the records of `backup_ids`: those whose manifest a
    drop removed meanwhile are forgotten again (a drop that came after the
    put forgets them itself), and the job's row says so. Returns them."""
    if repo.target.kind == "archive":
        return []
    gone = []
    for backup_id in backup_ids:
        try:
            # Read back once written (atomic.write_small), so absent now is a
            # drop, unless the target still lists it: a store answering
            # "not found" for what it holds (scan.not_served) dropped nothing.
            if repo.has_manifest(backup_id) or repo.still_listed([backup_id]):
                continue
        except CairnError as exc:  # cannot look now: the record stays, as it was
            # The manifest was written (and checked) before the record: the
            # backup is complete and `completed` is the truth; only a drop by
            # another server meanwhile goes unseen (too many open files, say).
            log.warning("backup %s is complete and recorded, but could not look for its "
                        "manifest again (a drop by another server meanwhile would go "
                        "unseen): %s", backup_id, exc.message)
            continue
        record = cairn.catalog.get(Backup, backup_id)
        if record is not None and record.job_id == ctx.job_id:
            cairn.catalog.forget(Backup, backup_id)
        gone.append(backup_id)
    if gone:
        ids = ", ".join(f"'{b}'" for b in gone)
        what = f"backup {ids} was" if len(gone) == 1 else f"backups {ids} were"
        ctx.finding = (f"{what} dropped from target '{repo.uri}' before the job ended "
                       "(a drop that cannot see this server's jobs: another server's): "
                       "the catalog does not list it")
    return gone


def recorded(cairn: Cairn, ctx: JobContext, repo: Repository, records: list[Backup]) -> None:
    """After the job put `records` in the catalog (their manifests landed):
    those a drop took meanwhile are forgotten again (forget_dropped), and the
    locks that interrupted backups of their namespaces to this target kept for
    a resume have served (resume.release_for). Every backup passes here:
    BACKUP DATABASE and TABLE, a scheduled one, an archive's base, a set's
    members (only the first two released them: a kept lock outlived the next
    archive base of its namespace for the whole resume_window). A release
    that fails leaves the backups complete: the window's expiry releases it."""
    forget_dropped(cairn, ctx, repo, [r.backup_id for r in records])
    try:
        resume.release_for(cairn, repo, {r.namespace for r in records}, ctx.job_id)
    except CairnError as exc:
        log.warning("backup job %s is complete, but releasing the objects kept for a resume "
                    "in %s failed (the window's expiry releases them): %s",
                    ctx.job_id, repo.uri, exc.message)
