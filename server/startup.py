"""What start-up does for the jobs a dead process left running: backups (kept
for a resume, listed when whole and their own, or abandoned), drops (the
target swept), restores (a hold released; whole after their install batch).
Registered on the job runner by the app (`register_cleanups`); split out of
backups.py, whose statements it shares nothing with but `summary`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from catalog import Backup, Job, Table
from catalog.errors import BackupInvalid, CairnError, NotFound, PermissionDenied, Unavailable
from storage.backup import Repository
from storage.backup.schema import load_header

from . import restore_hold, resume
from .backup_drops import ARCHIVED, prune_left, pruned
from .backup_own import UNREAD, its_own, landed_own
from .backups import TMP_WRITERS, summary
from .repos import remove_own_tmp, repository, sweep_tmp
from .state import Cairn

log = logging.getLogger("cairn.backup")


def register_cleanups(cairn: Cairn) -> None:
    """What start-up does for jobs a dead process left running. A backup keeps
    what it stored for the next backup within `[backup] resume_window` (resume.py;
    else it is abandoned in its target: its lock and the objects only it wrote
    go); a drop
    (DROP BACKUP, or keep_last after a backup) that may have stopped between
    removing a manifest and pruning its objects is finished by sweeping the
    target. A restore's unregistered files are swept by the engine; one that died
    after its install batch is whole, and its job says so. A verify wrote nothing."""

    def reach(repo: Repository, stored: bool) -> bool:
        """Whether the target is there (else the job made nothing in it);
        UNAVAILABLE (the clean-up stays pending, recovery.py) when it cannot be
        read, or is not there though the job had stored into it: a disk not
        mounted yet was taken for an empty target, its clean-up done."""
        try:
            if repo.exists():
                return True
        except NotFound:  # a local target's folder is not there
            pass
        if stored:
            raise Unavailable(f"backup target '{repo.uri}' is not there (not mounted?)")
        return False

    def sweep(job: Job) -> set[str] | None:
        """The target's backups now (None: the job left no sweep to do)."""
        target = job.cleanup.get("target")
        if not target or not job.cleanup.get("sweep"):
            return None
        repo = repository(cairn, target)
        reach(repo, True)
        present = set(repo.manifest_ids())
        for record in cairn.catalog.scan(Backup):
            if record.target == repo.uri and record.backup_id not in present:
                cairn.catalog.delete(Backup, record.backup_id)
        freed = repo.prune()
        pruned(cairn, repo.uri, everything=True)  # a failed drop's leftovers went too
        if namespace := job.cleanup.get(ARCHIVED):
            freed += prune_left(cairn, repo, namespace)
        log.info("swept %s after interrupted job %s (%d bytes freed)", target, job.job_id, freed)
        return present

    def cleanup_drop(job: Job) -> None:
        """A DROP BACKUP that died past the removal of its manifest (killed
        while the disk was full, its `completed` row kept in memory): the
        sweep forgets the backup and frees its objects, and the job says so.
        It said only "interrupted by server restart", as if nothing was done."""
        present = sweep(job)
        if present is not None and job.backup_id and job.backup_id not in present:
            job.error_message = (f"interrupted by server restart after backup "
                                 f"'{job.backup_id}' was dropped (its manifest is gone from "
                                 "its target); the backup is dropped and its objects freed")

    def cleanup_backup(job: Job) -> None:
        target, backup_id = job.cleanup.get("target"), job.cleanup.get("backup_id")
        if not target or not backup_id:
            return
        repo = repository(cairn, target)
        if not reach(repo, job.files_total > 0):  # >0: it got to its lock (write_backup)
            return
        if job.cleanup.get(UNREAD):  # a failed job's manifest goes (backup_run.unread)
            with contextlib.suppress(NotFound):
                repo.delete_manifest(backup_id)
            remove_own_tmp(repo)
            repo.abandon(backup_id, bool(job.cleanup.get("made_target")))
            return
        members = job.cleanup.get("members")
        if members and finish_set(job, repo, backup_id, list(members)):
            return
        # A target that cannot be read now raises: the clean-up stays pending.
        # Taken for no manifest, a whole one stayed unlisted under a kept lock.
        try:
            manifest: dict[str, Any] | None = repo.read_manifest(backup_id, require_body=False)
        except NotFound:
            manifest = None
        except BackupInvalid:  # damaged: no whole backup of the job's
            manifest = {}
        if manifest is not None and not (manifest and its_own(job, load_header(manifest))):
            log.warning("interrupted backup %s: the manifest under its id in %s is damaged "
                        "or not its own (another namespace, instant or scope); it goes",
                        backup_id, target)
            try:
                repo.delete_manifest(backup_id)
            except (Unavailable, PermissionDenied):  # not now: the clean-up stays pending
                raise
            except CairnError:  # gone already, or not removable at all (as before)
                pass
            manifest = None
        if manifest is not None:
            # It died after the manifest landed: the backup is whole, so list it.
            cairn.catalog.put(Backup(**summary(manifest, repo.uri), job_id=job.job_id))
            job.error_message = (f"interrupted by server restart after backup '{backup_id}' "
                                 "was complete; the backup is valid")
        elif resume.keep(cairn, job, repo, backup_id):
            remove_own_tmp(repo)
            sweep(job)
            return
        remove_own_tmp(repo)  # first: a skeleton with none left goes too (discard.py)
        freed = repo.abandon(backup_id, bool(job.cleanup.get("made_target")))
        log.info("cleaned interrupted backup %s in %s (%d bytes freed)", backup_id, target, freed)
        sweep(job)

    def cleanup_restore(job: Job) -> None:
        restore_hold.cleanup(lambda target: repository(cairn, target), job.cleanup,
                             partial(prune_left, cairn))
        uids = set(job.cleanup.get("table_uids") or ())
        if uids and any(t.uid in uids for t in cairn.catalog.scan(Table)):
            namespace, table = job.cleanup.get("namespace"), job.cleanup.get("table")
            # RESTORE TABLE installs one table into a namespace it leaves as it was.
            what = f"table '{namespace}.{table}'" if table else f"namespace '{namespace}'"
            job.error_message = (f"interrupted by server restart after {what} was restored "
                                 f"from backup '{job.backup_id}'; the restore is complete")

    def finish_set(job: Job, repo: Repository, set_id: str, members: list[str]) -> bool:
        """A backup set whose job died: whole (every member's manifest landed,
        each its own: backup_own.py) it is listed; otherwise the members that
        landed go, and the lock is kept for a resume or abandoned like any
        backup's (False)."""
        present = set(repo.manifest_ids())
        landed = {m: landed_own(job, repo, m, m.rsplit(".", 1)[1])
                  for m in members if m in present}
        if len(landed) == len(members) and all(landed.values()):
            for doc in landed.values():
                assert doc is not None
                cairn.catalog.put(Backup(**summary(doc, repo.uri), job_id=job.job_id))
            job.error_message = (f"interrupted by server restart after backup set '{set_id}' "
                                 "was complete; the backups are valid")
            with contextlib.suppress(CairnError):
                repo.abandon(set_id)  # the lock only: every object is referenced
            remove_own_tmp(repo)
            # Its keep_last may have died between a manifest and its prune: the
            # dropped member stayed listed and its objects stayed (kill -9 there).
            sweep(job)
            return True
        for m in members:
            if m in present:
                repo.delete_manifest(m)
        return False

    def sweep_tmp_of(job: Job, running: bool = False) -> None:
        if job.job_type in TMP_WRITERS and job.target:
            sweep_tmp(cairn, job.target, running)

    def swept(cleanup: Callable[[Job], None]) -> Callable[[Job], None]:
        """`cleanup`, then the temp files the dead process left in the job's
        target: a prune marker, a restore's hold or an object half-written.
        Best effort: one that stays is harmless, and the next start tries again."""
        def run(job: Job) -> None:
            cleanup(job)
            try:
                sweep_tmp_of(job)
            except CairnError as exc:
                log.warning("removing temp files of interrupted job %s from %s failed: %s",
                            job.job_id, job.target, exc.message)
        return run

    cairn.jobs.cleanups["backup"] = swept(cleanup_backup)
    cairn.jobs.cleanups["restore"] = swept(cleanup_restore)
    cairn.jobs.cleanups["drop_backup"] = swept(cleanup_drop)
    cairn.jobs.sweep = lambda job: sweep_tmp_of(job, running=True)
