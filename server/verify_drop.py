"""VERIFY BACKUP and DROP BACKUP: each a job on one backup, found by id in the
given target or the one the server's backup catalog recorded (`locate`)."""

from __future__ import annotations

from typing import Any

from catalog.errors import BackupInvalid, NotFound
from sqlgrammar import ast
from storage import jobproc
from storage.backup import Repository
from storage.backup.verify import verify_backup_of

from .backup_drops import drop_one, forget
from .backup_records import forget_gone, proven_gone
from .backups import (
    VERIFY_OPTIONS,
    check_options,
    job_row,
    locate,
    recorded_target,
    redacted,
    result_row,
)
from .dispatch import Routes
from .jobcalls import job_call
from .jobs import JobContext
from .result import Result
from .state import Cairn, Session

routes = Routes()

DROP_OPTIONS = {"detached": bool}


def gone_meanwhile(repo: Repository, backup_id: str) -> None:
    """NOT_FOUND when the backup a VERIFY read was dropped while it read them
    (DROP BACKUP, keep_last): objects it found missing are no damage, and a
    report that came out valid (the objects the drop freed were read before,
    or shared) is not the answer for a backup the target no longer holds. A
    manifest listed but "not found" when read is not served now, not gone
    (scan.not_served)."""
    if repo.target.kind != "archive" and not repo.has_manifest(backup_id) \
            and not repo.still_listed([backup_id]):
        raise NotFound(f"backup '{backup_id}' was dropped from target '{repo.uri}' "
                       "while it was being verified")


@routes.handles(ast.VerifyBackup, role="admin")
async def verify_backup(cairn: Cairn, session: Session, stmt: ast.VerifyBackup) -> Result:
    opts = check_options("VERIFY BACKUP", stmt.options, VERIFY_OPTIONS)
    where = await cairn.run(recorded_target, cairn, stmt.backup_id, stmt.target)
    repo = await cairn.run_target(where, locate, cairn, stmt.backup_id, stmt.target,
                                  opts.get("encryption_passphrase"))

    def work(ctx: JobContext) -> dict[str, Any]:
        try:
            # Throttled too, in a job process, which paces itself (a file that
            # crashes the readers ended the server when it ran here).
            report = job_call(ctx, repo.target.kind, verify_backup_of, repo,
                              stmt.backup_id, jobproc.WORK,
                              rate=cairn.config.backup.throttle_bytes_per_second,
                              seq_now=cairn.catalog.last_seq(), blame=True)
        except NotFound:
            forget_gone(cairn, repo, backup_id=stmt.backup_id)  # another server dropped it
            raise
        except BackupInvalid:
            gone_meanwhile(repo, stmt.backup_id)
            raise
        ctx.fault("verify.after_read", backup_id=stmt.backup_id)
        # Valid or not, a backup dropped before the answer (DROP BACKUP,
        # keep_last beside it) is NOT_FOUND, as a RESTORE of it then is.
        gone_meanwhile(repo, stmt.backup_id)
        if not report.is_valid:
            ctx.found_invalid(f"backup '{report.backup_id}' in target '{repo.uri}'",
                              report.errors)
        return {"backup_id": report.backup_id, "is_valid": report.is_valid,
                "files_checked": report.files_checked, "bytes_checked": report.bytes_checked,
                "errors": report.errors}

    job = await cairn.jobs.run("verify", session, work, target=repo.uri,
                               backup_id=stmt.backup_id, statement=redacted(stmt),
                               detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    r = job.result
    return result_row(r, [("backup_id", "TEXT"), ("is_valid", "BOOLEAN"),
                          ("files_checked", "BIGINT"), ("bytes_checked", "BIGINT"),
                          ("errors", "JSON")],
                      f"Backup '{stmt.backup_id}' is {'valid' if r['is_valid'] else 'INVALID'}")


@routes.handles(ast.DropBackup, role="admin")
async def drop_backup(cairn: Cairn, session: Session, stmt: ast.DropBackup) -> Result:
    opts = check_options("DROP BACKUP", stmt.options, DROP_OPTIONS)
    skipped = Result.of_message(f"Backup '{stmt.backup_id}' does not exist, skipped")

    def find() -> Repository | None:
        repo = locate(cairn, stmt.backup_id, stmt.target)
        if stmt.if_exists and not holds(repo, stmt.backup_id):
            # With IN as without: no job, nothing claimed dropped (a record
            # of it in the catalog is of a backup its target no longer holds,
            # when the target proves it: not an empty mount point).
            if proven_gone(repo, stmt.backup_id):
                forget(cairn, stmt.backup_id, repo.uri)
            return None
        return repo

    try:
        where = await cairn.run(recorded_target, cairn, stmt.backup_id, stmt.target)
        repo = await cairn.run_target(where, find)
    except NotFound:
        if stmt.if_exists:
            return skipped
        raise
    if repo is None:
        return skipped

    def work(ctx: JobContext) -> dict[str, Any]:
        try:
            freed = drop_one(cairn, ctx, repo, stmt.backup_id)
        except NotFound:
            if proven_gone(repo, stmt.backup_id):
                # The target is the truth: a record of a backup it no longer
                # holds (a set that never finished) went on being listed.
                forget(cairn, stmt.backup_id, repo.uri)
            if not stmt.if_exists:
                raise
            # Gone between the look above and the job (another drop): the
            # job's result says it dropped nothing.
            return {"backup_id": stmt.backup_id, "bytes_freed": 0, "skipped": True}
        return {"backup_id": stmt.backup_id, "bytes_freed": freed}

    job = await cairn.jobs.run("drop_backup", session, work, target=repo.uri,
                               backup_id=stmt.backup_id, statement=redacted(stmt),
                               detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    if job.result.get("skipped"):
        return skipped
    return result_row(job.result, [("backup_id", "TEXT"), ("bytes_freed", "BIGINT")],
                      f"Backup '{stmt.backup_id}' dropped")


def holds(repo: Repository, backup_id: str) -> bool:
    """Whether the target holds `backup_id`'s manifest (a missing target holds none)."""
    try:
        if repo.target.kind == "archive":
            return backup_id in repo.manifest_ids()
        # listed but "not found" read is not served now, not absent (scan.not_served)
        return repo.has_manifest(backup_id) or bool(repo.still_listed([backup_id]))
    except NotFound:
        return False
