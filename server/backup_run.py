"""BACKUP DATABASE: one namespace, as of one instant, into a repository.

The job enters storage twice: `Engine.snapshot` (the namespace at one instant,
every file ready to store) and `storage.backup.write_backup` (objects, then the
manifest). What stays here is the job: its row, progress, cancellation, the
throttle, and the backup catalog record."""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from catalog import Archive, Backup
from catalog.errors import BackupInvalid, CairnError, Cancelled, NotFound
from storage import clock_floor, jobproc
from storage.backup import Repository, stoppable, write_backup
from storage.backup.discard import unmade
from storage.backup.origin import whose
from storage.backup.recorded import scope_text
from storage.backup.schema import ArchiveRef, Manifest, Scope, load
from storage.joblost import Lost
from storage.snapshot import Snapshot

from .backup_own import UNREAD, taken
from .backup_writing import recorded
from .history import PENDING
from .jobcalls import job_call
from .jobs import JobContext
from .recovery import PENDING_NOTE
from .repos import remove_own_tmp
from .state import Cairn
from .throttle import Throttle

log = logging.getLogger("cairn.backup")

T = TypeVar("T")

# How long a killed backup's job waits for the clean-up after its job process
# (on an S3 target) before it ends and leaves the clean-up running.
CLEANUP_WAIT_SECONDS = 1.0


@dataclass
class BackupPlan:
    namespace: str
    repo: Repository
    backup_id: str
    label: str | None = None
    compression: str = "zstd"
    cut: tuple[int, int] | None = None  # set by run_backup: the snapshot's (lsn, time)
    tables: list[str] | None = None  # BACKUP TABLE: these tables only (None: all)
    after_windows: bool = False  # an archive's base: cut after the target's windows
    passphrase: str | None = None  # a BACKUP statement's: no base of an archive under another


def run_backup(cairn: Cairn, ctx: JobContext, plan: BackupPlan) -> dict[str, Any]:
    """The job's work: snapshot, store, record."""
    # made_target: a clean-up after a lost job process, or at start-up, also
    # removes the target's skeleton (storage/backup/discard.py).
    ctx.set(backup_id=plan.backup_id,
            cleanup={"target": plan.repo.uri, "backup_id": plan.backup_id,
                     "made_target": unmade(plan.repo.target)})
    ctx.check_cancelled()
    throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
    scope = None if plan.tables is None else Scope(kind="tables", tables=sorted(plan.tables))
    before = cairn.catalog.get(Archive, plan.namespace)
    # The buffered rows' Parquet is written by write_backup, in the job process.
    floor = (clock_floor.windows_end_us(plan.repo, plan.namespace, cairn.catalog.server_id())
             if plan.after_windows else 0)
    with cairn.engine.snapshot({plan.namespace: plan.tables}, defer_export=True,
                               floor_us=floor) as snap:
        ctx.fault("backup.snapshot_taken")
        (image,) = snap.namespaces
        # Archived changes continue a base exactly at its snapshot's cut.
        plan.cut = snap.cuts[plan.namespace]
        taken(ctx, snap.snapshot_at, scope, plan.namespace)  # what its own manifest says
        archive = None if plan.tables is not None else archive_of(cairn, plan, before, snap)
        m = in_job_process(
            ctx, plan, write_backup, plan.repo, image, plan.backup_id,
            snapshot_at=snap.snapshot_at, label=plan.label, work=jobproc.WORK,
            spent=throttle.spent if throttle.rate > 0 else None, scope=scope, archive=archive,
            here=throttle.rate > 0)
    ctx.land()  # its manifest landed: the backup is whole, whatever the data directory says
    record = Backup(
        backup_id=m.backup_id, namespace=m.namespace, target=plan.repo.uri,
        created_at=m.created_at, snapshot_at=m.snapshot_at, tables=m.totals.tables,
        rows=m.totals.live_rows, row_versions=m.totals.rows, files=m.totals.files,
        bytes=m.totals.bytes,
        bytes_written=m.totals.bytes_written, label=m.label, encrypted=m.encrypted,
        job_id=ctx.job_id, scope=scope_text(m.scope), **whose(m.namespace_record),
    )
    ctx.fault("backup.before_record")
    # A full data directory keeps the record in memory (listed now, written
    # with the next write that succeeds): it answered 503, the backup stayed
    # in its target unrecorded and RESTORE blamed a copy of the data directory.
    cairn.catalog.keep(record)
    recorded(cairn, ctx, plan.repo, [record])
    return {
        "job_id": ctx.job_id, "backup_id": m.backup_id, "namespace": m.namespace,
        "target": plan.repo.uri, "status": "completed", "tables": record.tables,
        "rows": record.rows, "row_versions": record.row_versions, "files": record.files,
        "bytes": record.bytes,
        "bytes_written": record.bytes_written,
    }


def in_job_process(ctx: JobContext, plan: BackupPlan, fn: Callable[..., T], /, *args: Any,
                   here: bool = False, **kwargs: Any) -> T:
    """`fn` storing the backup, in a job process (storage/jobproc.py) unless
    `here` (a throttled run: its rate is the server's). Should the process be
    lost midway, the backup's lock is abandoned here, as the process would
    have on a failure: every object only this run wrote goes, and the temp
    file of the object it was writing. Run here against object storage, a
    KILL ends the job at once (jobcalls.py) and `undo_late` follows the call left
    running: no manifest of a cancelled job stays."""
    try:
        return job_call(ctx, plan.repo.target.kind, fn, *args, here=here,
                        late=lambda: undo_late(plan.repo, plan.backup_id, [plan.backup_id],
                                               bool(ctx.job.cleanup.get("made_target"))),
                        **kwargs)
    except jobproc.Lost as lost:
        # Lost after its manifest landed (between the manifest and its answer):
        # the backup is whole. Taken for nothing whole, the job failed while
        # the target held the backup, which the catalog never listed, and a
        # RESTORE of the namespace blamed a copy of the data directory for it.
        # The cancel read once: a KILL while the landed manifest was read back
        # removed it (read afresh) while the job went on as whole, 200
        # `completed` for a backup gone. Once read whole it stays, and the
        # kill meets the job past its point of no return (keep_last's check).
        cancelled = ctx.cancelled
        try:
            landed = None if cancelled else _landed(plan, kwargs.get("snapshot_at"),
                                                    kwargs.get("scope"))
        except CairnError as exc:  # not known whether it landed: settled later
            ctx.fault("backup.landed_read", landed=False)
            raise unread(ctx, lost, exc) from None
        ctx.fault("backup.landed_read", landed=landed is not None)
        if not cancelled or plan.repo.target.kind != "s3":
            # The lock goes; so do the objects only it names (none when landed:
            # its manifest names them). A killed job's landed manifest goes first.
            _abandon(plan, bool(ctx.job.cleanup.get("made_target")), cancelled)
            if landed is not None:
                log.warning("backup %s: its job process ended after its manifest landed; "
                            "the backup is whole", plan.backup_id)
                return landed  # type: ignore[return-value]  # write_backup's Manifest
        else:
            # Killed: the job ends now. A clean-up the target holds up (a
            # listing that never ends: the job process was killed in one) is
            # left to end alone; the lock it would remove is a dead one that
            # the target's next prune takes away.
            cleaned = threading.Thread(
                target=_abandon, args=(plan, bool(ctx.job.cleanup.get("made_target")), True),
                name="cairn-backup-cleanup", daemon=True)
            cleaned.start()
            cleaned.join(CLEANUP_WAIT_SECONDS)
            if cleaned.is_alive():
                stoppable.left(+1)
                threading.Thread(target=_counted_out, args=(cleaned,), daemon=True).start()
                log.warning("backup %s: the clean-up after its killed job is still waiting "
                            "on the target after %g s; the job ends, the clean-up runs on",
                            plan.backup_id, CLEANUP_WAIT_SECONDS)
        if cancelled or ctx.cancelled:
            raise Cancelled(f"job {ctx.job_id} was cancelled") from None
        raise


def _counted_out(cleaned: threading.Thread) -> None:
    cleaned.join()
    stoppable.left(-1)  # no longer in the way of the server's exit (server/serving.py)


def undo_late(repo: Repository, lock_id: str, backup_ids: list[str],
              made_target: bool) -> None:
    """After a killed job's call left running on an object store ended (on
    its thread): the manifests `backup_ids` go if they landed (the job said
    cancelled, the catalog has no record), then the lock `lock_id` and every
    object only it used, as a failed run's. The lock may be gone (released
    once the manifests were written): those objects are then the next prune's."""
    try:
        for backup_id in backup_ids:
            with contextlib.suppress(NotFound):
                repo.delete_manifest(backup_id)
    except CairnError as exc:
        log.warning("backup %s: could not remove a manifest its killed job's call wrote "
                    "after the job ended: %s", lock_id, exc.message)
        return
    _abandon(BackupPlan("", repo, lock_id), made_target)
    log.warning("backup %s: the call its killed job left waiting on the target has ended; "
                "what it stored is cleaned up", lock_id)


def _landed(plan: BackupPlan, snapshot_at: str | None, scope: Scope | None) -> Manifest | None:
    """The backup's manifest, when its lost job process had written it whole;
    None when it is not there (or not readable, or not this job's: then it
    goes). A manifest planted under the running job's id (its id is in
    system.jobs) by anyone who can write the target, the job process lost
    before it wrote its own, was taken as the backup: BACKUP DATABASE a
    answered `completed` with a backup of namespace b recorded, none of a."""
    try:
        m = load(plan.repo.read_manifest(plan.backup_id))
        if (m.namespace, m.snapshot_at, m.scope) != (plan.namespace, snapshot_at, scope):
            log.warning("backup %s: the manifest under its id is not its own (another "
                        "namespace, instant or scope); it goes", plan.backup_id)
            raise BackupInvalid("not its own")
        return m
    except NotFound:
        return None
    except BackupInvalid:  # cut short on its way (object storage), or not its own: no backup
        with contextlib.suppress(CairnError):
            plan.repo.delete_manifest(plan.backup_id)
        return None
    except CairnError as exc:  # the target cannot be read now: the caller's `unread`
        log.warning("backup %s: could not read its manifest after its job process "
                    "ended: %s", plan.backup_id, exc.message)
        raise


def unread(ctx: JobContext, lost: CairnError, exc: CairnError) -> CairnError:
    """The job's error when its lost job process's manifest could not be read
    back (the target did not answer): whether it landed is not known. Taken
    for not whole, as before, the job failed and a whole manifest stayed in
    the target, listed by no catalog, for good. Now the job fails and its
    clean-up stays pending (server/recovery.py: tried at every start and
    every minute) until the target answers: then the manifest goes, and the
    lock with the objects only it used (`cleanup_backup`), as a failed or
    killed backup keeps nothing. Until then the lock keeps them from prunes."""
    ctx.set(cleanup={**ctx.job.cleanup, UNREAD: True, PENDING: exc.message})
    note = (f"{PENDING_NOTE} ({exc.message}); it is tried again at every start and every "
            "minute")
    if ctx.cancelled:
        return Cancelled(f"job {ctx.job_id} was cancelled{note}")
    return Lost(f"{lost.message}{note}")


def _abandon(plan: BackupPlan, made_target: bool, cancelled: bool = False) -> None:
    try:
        if cancelled:  # a cancelled job leaves no manifest (write_backup's own rule)
            with contextlib.suppress(CairnError):
                plan.repo.delete_manifest(plan.backup_id)
        remove_own_tmp(plan.repo)  # first: a skeleton with none left goes too (discard.py)
        plan.repo.abandon(plan.backup_id, made_target)
    except CairnError as exc:
        log.warning("backup %s: could not clean up after its job process: %s",
                    plan.backup_id, exc.message)


def archive_of(cairn: Cairn, plan: BackupPlan, before: Archive | None,
               snap: Snapshot) -> ArchiveRef | None:
    """The archive the backup is a base of: the one shipping its namespace to
    the same target from before the snapshot until after it (`before`, read
    before it was taken, is the same archive, not stopped, now too), with the
    change log on at the cut, so the archive's segments continue the cut's
    lsn. None otherwise: a backup of a namespace not archived there, or one
    racing START or STOP ARCHIVING, is no base. Nor is an encrypted backup of
    a plain archive, or a plain one of an encrypted archive: a passphrase
    refuses plain segments, so such a base would leave its window
    restorable by neither; nor one encrypted with another passphrase than the
    archive's (`plan.passphrase`): its segments are under the archive's key,
    and as the newest base it made every time after it refused with either
    passphrase, VERIFY ARCHIVE too (until 2026-12-07)."""
    ns = plan.namespace
    now = cairn.catalog.get(Archive, ns)
    if (before is None or now is None or ns not in snap.logged
            or now.archive_id != before.archive_id
            or "stopped" in (before.status, now.status) or now.target != plan.repo.uri
            or (now.secret is not None) != plan.repo.encrypted
            or not _same(plan.passphrase, now.secret)):
        return None
    return ArchiveRef(id=now.archive_id, lsn=snap.cuts[ns][0])


def _same(given: str | None, archive: str | None) -> bool:
    """Whether a BACKUP's passphrase (None: not given, or an archive's own
    base) is the archive's, compared in constant time."""
    if given is None or archive is None:
        return True
    return hmac.compare_digest(given.encode(), archive.encode())
