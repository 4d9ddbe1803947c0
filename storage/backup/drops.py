"""A dropped backup's steps in the target (DROP BACKUP, keep_last), each one
call of a job process (storage/jobproc.py): reading manifests, listing
folders and checking lock files is Python on a GIL, and on the server's it
kept the statements waiting (docs/performance.md, "The event loop's GIL
beside a BACKUP"). The server keeps the job's row and the catalog between
them (server/backup_drops.py `drop_one`), or, for keep_last after a BACKUP, once
after them all (`keep_newest`: one call, not four a dropped backup)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalog.errors import BackupInvalid, NotFound

from ..work import Work
from .pruning import prune_dropped
from .repository import Repository
from .schema import load_header


def drop_plan(repo: Repository, backup_id: str) -> tuple[str, set[str]]:
    """What dropping `backup_id` takes: its namespace and its objects, from its
    public header (an encrypted one needs no key). NotFound if it is not
    there; BackupInvalid if it is damaged, or if a lock, a prune marker or any
    other manifest is (the prune after the drop would refuse: nothing is
    removed rather than half)."""
    m = repo.read_manifest(backup_id, require_body=False)
    repo.check_prunable()
    repo.referenced_objects()  # BackupInvalid for a manifest it cannot read
    return m["namespace"], {o.oid for o in load_header(m).objects}


def drop_and_prune(repo: Repository, backup_id: str, candidates: set[str], work: Work) -> int:
    """Remove the manifest, then every object of `candidates` nothing else
    uses (`prune_dropped`): bytes freed."""
    repo.delete_manifest(backup_id)
    return prune_dropped(repo, backup_id, candidates, work)


def keep_newest(repo: Repository, namespace: str, keep: int, work: Work,
                prune_archive: Callable[[Repository, str], int] | None = None
                ) -> list[tuple[str, int]]:
    """keep_last: drop `namespace`'s whole backups in the target beyond the
    newest `keep` (not table backups, nor members of a backup set: those go
    with their set), oldest first, so one stopped halfway (a crash, a
    failure) leaves the newest without a gap among them. A backup another
    drop removed first (a keep_last beside this one, a DROP BACKUP) is
    skipped. Then, if any went, `prune_archive(repo, namespace)` (the
    archived changes no base left needs). The dropped backups, newest first,
    each with the bytes its drop freed (the archive's prune counted in the
    oldest's).

    One job-process call for what was four a dropped backup (the listing,
    each drop's plan and prune, the archive's prune): each call's messages
    were a few takes of the server's GIL beside the statements
    (docs/performance.md, bench/gil_takes.py)."""
    listed = repo.list_manifests()
    own = [m for m in listed
           if "error" not in m and m["namespace"] == namespace and m.get("scope") is None]
    doomed = [m["backup_id"] for m in own[keep:]]  # newest first
    damaged = [m for m in listed if "error" in m]
    if doomed and damaged:
        # Each drop's prune would refuse after its manifest went: refused here,
        # before anything is removed (what the damaged one uses is unknown).
        raise BackupInvalid(
            f"cannot tell which objects are in use: {damaged[0]['error']}; nothing was dropped")
    if not doomed:
        return []
    repo.check_prunable()
    # The manifests go oldest first, then one prune of what they used: a prune
    # a drop rereads every manifest, and N planted copies of one manifest took
    # N^2 reads (1,000: 76 s). A crash before the prune leaves objects that
    # start-up sweeps (the job's cleanup), never a newer backup gone before
    # an older one.
    gone: list[tuple[str, list[Any]]] = []
    for backup_id in reversed(doomed):
        try:
            header = load_header(repo.read_manifest(backup_id, require_body=False))
            repo.delete_manifest(backup_id)
        except NotFound:
            if repo.has_manifest(backup_id):
                raise
            continue
        gone.append((backup_id, header.objects))
    if not gone:
        return []
    freed_oids: set[str] = set()
    prune_dropped(repo, gone[0][0], {o.oid for _, objects in gone for o in objects}, work,
                  freed_oids)
    dropped: list[tuple[str, int]] = []
    for backup_id, objects in gone:  # each object's bytes to the oldest that used it
        mine = {o.oid: o.size for o in objects if o.oid in freed_oids}
        freed_oids -= set(mine)
        dropped.append((backup_id, sum(mine.values())))
    if prune_archive is not None:
        backup_id, freed = dropped[0]
        dropped[0] = (backup_id, freed + prune_archive(repo, namespace))
    return dropped[::-1]
