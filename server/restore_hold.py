"""A restore holds the objects it reads: DROP BACKUP or keep_last beside it
(from this server or another one sharing the target) does not pull them away.

Before its first object is fetched, a restore writes a lock
`locks/rs-<id>.json` naming every object of the backups it restores (the same
kind of lock a running backup writes, see storage/backup/locks.py, so every
prune keeps those objects) and waits for any prune that read the locks before
it. Then it looks again for each backup's manifest: a backup dropped in the
meantime is NOT_FOUND, nothing fetched. A restore to a time names the archive
it replays in its lock, and the archive's prune leaves that archive's
segments alone (storage/archive/holds.py). A DROP BACKUP that comes later removes
the manifest as always, and its objects stay until the restore ends. At the
end the lock goes; when a manifest is gone by then, the objects only that
backup used are pruned with it (`abandon`), so nothing is left unreferenced.
Should the process die, the job's cleanup names the lock and start-up
abandons it the same way (startup.register_cleanups).

An archive target (`.tar`) is never pruned: nothing to hold. A target that
cannot take the lock (read-only storage) is restored from without one, as
before."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from catalog import Job
from catalog.errors import CairnError, Cancelled, NotFound
from catalog.ids import new_id
from storage.archive import holds
from storage.backup import Manifest, Repository
from storage.backup.locks import BackupLock

from .jobs import JobContext

log = logging.getLogger("cairn.restore")

KEY = "hold"  # in the job's cleanup: the lock's id
REPLAYS, HELD = "replays", "held"  # a restore to a time's: its archive's namespace, its base


def held_here(jobs: Sequence[Job], uri: str) -> set[str]:
    """The archives in target `uri` a restore to a time running in this server
    replays (its job's cleanup names its lock, `rs-<id>.<archive_id>`): what
    VERIFY ARCHIVE and SHOW RESTORE POINTS excuse as held (a dropped base's
    run is then no loss while the restore replays it). Not a lock found in
    the target: anyone who can write the target can plant one, fresh or of
    a live pid, and a lock alone hid a base really lost from both (VERIFY
    valid, no error row, while every RESTORE as_of was refused). Another
    server's restore replaying the run is reported as the loss it is about
    to be once that restore ends and the prune takes the run."""
    out = set()
    for job in jobs:
        cleanup = job.cleanup or {}
        lock_id = cleanup.get(KEY)
        if cleanup.get("target") == uri and isinstance(lock_id, str) and "." in lock_id:
            out.add(lock_id.split(".", 1)[1])
    return out


@contextlib.contextmanager
def hold(repo: Repository, manifests: Sequence[Manifest], ctx: JobContext,
         archive_id: str | None = None,
         dropped: Callable[[], None] | None = None) -> Iterator[None]:
    """While the block runs, the objects of `manifests` stay in `repo`, and
    so do the segments of archive `archive_id` (a restore to a time replays
    them: storage/archive/holds.py). `dropped` runs once the lock is gone
    when a backup was dropped meanwhile (the segments it left are pruned)."""
    lock = _take(repo, manifests, ctx, archive_id)
    try:
        if lock is not None:
            for m in manifests:
                if not repo.has_manifest(m.backup_id):
                    raise NotFound(f"backup '{m.backup_id}' was dropped from target "
                                   f"'{repo.uri}' as the restore started")
        yield
    finally:
        if lock is not None:
            let_go(repo, lock, [m.backup_id for m in manifests], dropped)


def _take(repo: Repository, manifests: Sequence[Manifest], ctx: JobContext,
          archive_id: str | None) -> BackupLock | None:
    if repo.target.kind == "archive":
        return None
    lock_id = holds.hold_id(new_id("rs"), archive_id)
    # Recorded before the lock is written: start-up removes it should we die
    # (and, for a restore to a time, what a drop beside it left of the archive).
    replays = {} if archive_id is None else {
        REPLAYS: manifests[0].namespace, HELD: [m.backup_id for m in manifests]}
    ctx.set(cleanup={**(ctx.job.cleanup or {}), "target": repo.uri, KEY: lock_id, **replays})
    names = {o.oid for m in manifests for o in m.objects}
    try:
        return repo.hold(lock_id, names, should_stop=lambda: ctx.cancelled)
    except Cancelled:
        raise
    except (CairnError, OSError) as exc:
        log.warning("restore %s reads target %s without holding its objects: %s",
                    ctx.job_id, repo.uri, getattr(exc, "message", exc))
        return None


def let_go(repo: Repository, lock: BackupLock, backup_ids: list[str],
           dropped: Callable[[], None] | None = None) -> None:
    """Remove the lock; with it the objects of a backup dropped meanwhile
    (then `dropped` runs). A failure is logged, never raised: the restore's
    outcome stands (a lock left behind is removed at the next start-up
    through the job's cleanup; segments left, by the next prune)."""
    try:
        if all(repo.has_manifest(b) for b in backup_ids):
            lock.release()
        else:
            freed = lock.abandon()
            log.info("restore released lock %s; %d bytes of dropped backups freed",
                     lock.backup_id, freed)
            if dropped is not None:
                dropped()
    except Exception:
        log.warning("could not release restore lock %s in %s", lock.backup_id, repo.uri,
                    exc_info=True)


def cleanup(repo_for: Callable[[str], Repository], job_cleanup: dict[str, Any],
            pruned: Callable[[Repository, str], int] | None = None) -> None:
    """Start-up: the lock of a restore that died (see startup.register_cleanups).
    A restore to a time whose base was dropped meanwhile held that run's
    segments; `pruned(repo, namespace)` prunes them now, as the restore would
    have as it ended (before, they stayed until another drop into the target,
    and VERIFY ARCHIVE said the run's changes could not be restored)."""
    lock_id, target = job_cleanup.get(KEY), job_cleanup.get("target")
    if isinstance(lock_id, str) and isinstance(target, str):
        repo = repo_for(target)
        freed = repo.abandon(lock_id)
        log.info("removed lock %s of an interrupted restore in %s (%d bytes freed)",
                 lock_id, target, freed)
        namespace, held = job_cleanup.get(REPLAYS), job_cleanup.get(HELD)
        if (pruned is not None and isinstance(namespace, str) and isinstance(held, list)
                and not all(repo.has_manifest(b) for b in held)):
            log.info("interrupted restore %s: %d bytes of archived changes of a dropped "
                     "base freed", lock_id, pruned(repo, namespace))
