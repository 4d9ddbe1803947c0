"""A backup's drops from the server's side: keep_last after a BACKUP (one
job-process call, storage/backup/drops.py `keep_newest`) and DROP BACKUP's
(each step a job-process call). What reads, lists and deletes in the target
runs in a job process; the job's row and the catalog stay here."""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Callable
from functools import cache, partial
from typing import Any, TypeVar

from catalog import Archive, Backup, Meta, Namespace
from catalog.errors import CairnError, Cancelled, NotFound
from storage import jobproc
from storage.archive import store as archived
from storage.backup import Repository
from storage.backup.drops import PruneFailed, drop_and_prune, keep_newest
from storage.backup.origin import Origin

from . import archiving, data_copy
from .backup_writing import plan_drop, running_backups
from .jobcalls import job_call
from .jobs import JobContext
from .state import Cairn

log = logging.getLogger(__name__)

T = TypeVar("T")


def drop_beyond(cairn: Cairn, ctx: JobContext, repo: Repository, namespace: str,
                keep: int, written: str | None = None) -> tuple[list[str], list[str]]:
    """keep_last: drop this namespace's backups in the target beyond the newest
    `keep` (by snapshot), never `written` (the one the BACKUP just wrote), in
    one call of a job process (storage/backup/drops.py `keep_newest`); the
    job's row and the catalog stay here. The ids dropped, and those of the
    manifests it could not read (`keep_newest`)."""
    running = _running_archive(cairn, namespace) if repo.target.kind != "archive" else None
    # Should the process die from here on, start-up sweeps the target (cleanups),
    # the archived changes the drops leave without a base too (ARCHIVED).
    ctx.set(durable=True, cleanup={**ctx.job.cleanup, "target": repo.uri, "sweep": True,
                                   **archived_of(repo, namespace)})
    # keep_newest(archive_id) is `running == archive_id`, picklable.
    prune = (None if repo.target.kind == "archive"
             else partial(archived.prune, keep_newest=partial(operator.eq, running)))
    everything = unpruned(cairn, repo.uri)
    try:
        dropped, unread = dropping(cairn, ctx, repo,
                           lambda r: r.namespace == namespace and r.backup_id != written,
                           keep_newest, repo, namespace, keep, jobproc.WORK, prune,
                           everything, written, origin_of(cairn, namespace),
                           busy=sorted(running_backups(cairn, ctx.job_id)))
    except PruneFailed as exc:
        pruned_partly(cairn, repo.uri, exc.dropped)
        if running is not None:
            archiving.service(cairn).backup_dropped(namespace)
        raise dropped_unfreed(ctx, exc) from None
    ctx.land()  # the manifests went: a full data directory no longer fails the job
    pruned(cairn, repo.uri, everything)
    for backup_id, _ in dropped:
        forget(cairn, backup_id, repo.uri)
    if dropped and running is not None:
        archiving.service(cairn).backup_dropped(namespace)
    return [backup_id for backup_id, _ in dropped], unread


def drop_unless_gone(cairn: Cairn, ctx: JobContext, repo: Repository, backup_id: str) -> bool:
    """keep_last's drop of one backup; False when another drop (a keep_last of a
    backup running beside this one, a DROP BACKUP) removed it first: the job
    whose backup has landed does not fail for it."""
    try:
        drop_one(cairn, ctx, repo, backup_id)
    except NotFound:
        if repo.has_manifest(backup_id):
            raise
        return False
    return True


def drop_one(cairn: Cairn, ctx: JobContext, repo: Repository, backup_id: str) -> int:
    """Remove a manifest, then every object of it that nothing else uses (the
    prune waits for, and is waited for by, backups into the same target).
    What reads, lists and deletes in the target runs in a job process
    (storage/backup/drops.py); the job's row and the catalog stay here."""
    namespace, oids = plan_drop(cairn, ctx, repo, backup_id)  # 409 while still written
    # Should the process die from here on, start-up sweeps the target (cleanups),
    # the archived changes the drop leaves without a base too (ARCHIVED).
    ctx.set(durable=True, cleanup={**ctx.job.cleanup, "target": repo.uri, "sweep": True,
                                   **archived_of(repo, namespace)})
    everything = unpruned(cairn, repo.uri)
    try:
        freed = dropping(cairn, ctx, repo, lambda r: r.backup_id == backup_id,
                         drop_and_prune, repo, backup_id, oids, jobproc.WORK, everything)
    except PruneFailed as exc:
        pruned_partly(cairn, repo.uri, exc.dropped)
        raise dropped_unfreed(ctx, exc) from None
    ctx.land()  # the manifest went: a full data directory no longer fails the job
    pruned(cairn, repo.uri, everything)
    forget(cairn, backup_id, repo.uri)
    if repo.target.kind != "archive":
        ctx.fault("drop.before_archive_prune", backup_id=backup_id)
        try:
            freed += prune_archived(cairn, ctx, repo, namespace)
        except Cancelled as exc:  # the backup is gone: `failed`, not `cancelled`
            why = ctx.past_return(exc)
            raise with_message(why, f"backup '{backup_id}' dropped; freeing its archived "
                                    f"changes failed: {why.message}") from exc
    return freed


def dropping(cairn: Cairn, ctx: JobContext, repo: Repository,
             affected: Callable[[Backup], bool], fn: Callable[..., T], /, *args: Any,
             **kwargs: Any) -> T:
    """`fn(*args)`, a drop's removal of manifests and prune, in a job process.
    Should the process be lost (the OOM killer, kill -9) after some manifests
    went, the catalog's records of target `repo` that are `affected` are
    looked up in the target: those whose manifests are gone are PruneFailed
    naming them, as a prune failing after them (the catalog forgets them, the
    next drop frees their objects), where they stayed listed, VERIFY and
    RESTORE of them NOT_FOUND, until a restart. Lost as it is otherwise.
    Run in the server against object storage, a KILL ends the job at once
    (jobcalls.py); the call left running, once it ends, does the same."""
    def late() -> None:  # run here, killed, and the call left running ended since
        set_unpruned(cairn, repo.uri)
        for backup_id in gone_from(cairn, repo, affected):
            forget(cairn, backup_id, repo.uri)

    try:
        return job_call(ctx, repo.target.kind, fn, *args, late=late, **kwargs)
    except jobproc.Lost as exc:
        set_unpruned(cairn, repo.uri)  # it may have stopped between a manifest and its prune
        gone = gone_from(cairn, repo, affected)
        if not gone:
            raise
        raise PruneFailed([(b, 0) for b in gone], exc) from exc


def gone_from(cairn: Cairn, repo: Repository, affected: Callable[[Backup], bool]) -> list[str]:
    """The `affected` backups the catalog lists in `repo` whose manifests the
    target no longer holds, newest first. The catalog is read before the
    target: a backup listed after the target was (its manifest landed since)
    is not taken for gone. A target that cannot be read, or is not there at
    all (a disk not mounted), tells nothing: none."""
    listed = sorted((r for r in cairn.catalog.scan(Backup)
                     if r.target == repo.uri and affected(r)),
                    key=lambda r: (r.snapshot_at, r.created_at), reverse=True)
    if not listed:
        return []
    try:
        present = set(repo.manifest_ids()) if repo.exists() else None
    except CairnError as exc:
        log.warning("backup target %s: cannot tell which backups a lost job process dropped: "
                    "%s", repo.uri, exc.message)
        return []
    if present is None:
        return []
    return [r.backup_id for r in listed if r.backup_id not in present]


# The catalog's note that a drop's prune in target <uri> failed after its
# manifests went: what they alone used is still there, so the next drop's
# prune in that target looks at every object, not only its own backup's.
UNPRUNED = "unpruned\x00"


def unpruned(cairn: Cairn, uri: str) -> bool:
    return cairn.catalog.get(Meta, UNPRUNED + uri) is not None


def set_unpruned(cairn: Cairn, uri: str) -> None:
    cairn.catalog.keep(Meta(UNPRUNED + uri, True))  # in memory while the disk is full


def pruned(cairn: Cairn, uri: str, everything: bool) -> None:
    """A drop's prune succeeded: one of every object clears the note."""
    if everything:
        cairn.catalog.forget(Meta, UNPRUNED + uri)


def pruned_partly(cairn: Cairn, uri: str, dropped: list[tuple[str, int]]) -> None:
    """The manifests of `dropped` went, their prune failed: the catalog
    forgets them all the same (it went on listing them, a backup no longer
    in its target), and the next drop's prune looks at every object."""
    set_unpruned(cairn, uri)
    for backup_id, _ in dropped:
        forget(cairn, backup_id, uri)


def dropped_unfreed(ctx: JobContext, exc: PruneFailed) -> CairnError:
    """The prune's own error (its code), saying the drop itself happened; a
    cancel's (a KILL, its job process killed 5 s after it) is `Stopped`: the
    job is `failed`, not `cancelled`, as its backups are gone."""
    ids = ", ".join(f"'{b}'" for b, _ in exc.dropped)
    what = f"backup {ids}" if len(exc.dropped) == 1 else f"backups {ids}"
    then = ((f"freeing {'its' if len(exc.dropped) == 1 else 'their'} objects failed "
             "(the next drop in this target frees them)") if exc.pruning
            else "dropping the others failed")
    error = ctx.past_return(exc.error)
    return with_message(error, f"{what} dropped; {then}: {error.message}")


def with_message(exc: CairnError, message: str) -> CairnError:
    """`exc` (its type, code and fields) saying `message` instead."""
    new = copy.copy(exc)
    new.message, new.args = message, (message,)
    return new


def forget(cairn: Cairn, backup_id: str, uri: str) -> None:
    """The catalog's record of a backup dropped from target `uri`, if it is
    that target's: a backup id is the same in a copy of a target (ATTACH calls
    it a conflict), and dropping the copy's removed the original's record, the
    backup still in its own target then NOT_FOUND by id. While the data
    directory refuses writes (full) it is forgotten in memory, and on disk
    with the next write that succeeds (Catalog.forget): it stayed listed, its
    VERIFY 404, until a restart."""
    record = cairn.catalog.get(Backup, backup_id)
    if record is not None and record.target == uri:
        cairn.catalog.forget(Backup, backup_id)


def prune_archived(cairn: Cairn, ctx: JobContext, repo: Repository, namespace: str) -> int:
    """Archived changes of `namespace` that no base backup left in the target
    needs go too (the newest segment of a running archive stays: archiving
    resumes after it)."""
    running = _running_archive(cairn, namespace)
    if running is not None:
        archiving.service(cairn).backup_dropped(namespace)
    # keep_newest(archive_id) is `running == archive_id`, picklable.
    return job_call(ctx, repo.target.kind, archived.prune, repo, namespace,
                    partial(operator.eq, running))


# In a drop's job cleanup: the namespace whose archived changes a start-up
# sweep prunes (backups.py `sweep`). A drop killed between its manifests and
# that prune left them: VERIFY ARCHIVE said a gap, SHOW RESTORE POINTS showed
# an error row, and the segments stayed, until another drop into the target.
ARCHIVED = "archived_namespace"


def archived_of(repo: Repository, namespace: str) -> dict[str, str]:
    return {} if repo.target.kind == "archive" else {ARCHIVED: namespace}


def prune_left(cairn: Cairn, repo: Repository, namespace: str) -> int:
    """`prune_archived` at start-up, without a job: what a drop left to a
    restore to a time that died holding it (restore_hold.cleanup)."""
    return archived.prune(repo, namespace, partial(operator.eq, _running_archive(cairn, namespace)))


def origin_of(cairn: Cairn, namespace: str) -> Origin:
    """This server, `namespace`'s creation time here (None: no such namespace),
    the backups its catalog records and those its BACKUP jobs are still
    writing (Origin.written_here)."""
    return origins(cairn)(namespace)


def origins(cairn: Cairn) -> Callable[[str], Origin]:
    """`origin_of` for the namespaces of one decision (every member of every
    listed set): the catalog's backup records read once, not once a member."""
    # The jobs before the records: a job that records its backup and ends
    # between the two reads is in the records.
    writing = running_backups(cairn)
    known = frozenset(b.backup_id for b in cairn.catalog.scan(Backup))
    inherited = data_copy.inherited(cairn.catalog)
    server = cairn.catalog.server_id()

    @cache
    def of(namespace: str) -> Origin:
        rec = cairn.catalog.get(Namespace, namespace)
        return Origin(server, None if rec is None else rec.created_at,
                      None if rec is None else rec.restored_from, known, inherited, writing,
                      None if rec is None else rec.restored_tables)

    return of


def _running_archive(cairn: Cairn, namespace: str) -> str | None:
    """The id of `namespace`'s archive unless it is stopped (its newest
    segment stays in a prune: archiving resumes after it)."""
    rec = cairn.catalog.get(Archive, namespace)
    return rec.archive_id if rec is not None and rec.status != "stopped" else None
