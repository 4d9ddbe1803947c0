"""A dropped backup's steps in the target (DROP BACKUP, keep_last), each one
call of a job process (storage/jobproc.py): reading manifests, listing
folders and checking lock files is Python on a GIL, and on the server's it
kept the statements waiting (docs/performance.md, "The event loop's GIL
beside a BACKUP"). The server keeps the job's row and the catalog between
them (server/backup_drops.py `drop_one`), or, for keep_last after a BACKUP, once
after them all (`keep_newest`: one call, not four a dropped backup)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from catalog.errors import BackupInvalid, CairnError, NotFound, Unavailable

from ..work import Work
from .origin import Origin
from .pruning import prune_dropped
from .repository import Repository
from .schema import load_header
from .selection import UNAVAILABLE, may_be_of
from .writing import held, lock_ids, refuse_writing

log = logging.getLogger("cairn.backup")


def drop_plan(repo: Repository, backup_id: str) -> tuple[str, set[str]]:
    """What dropping `backup_id` takes: its namespace and its objects, from its
    public header (an encrypted one needs no key). NotFound if it is not
    there; StillWriting (409) while its lock is in the target (writing.py);
    BackupInvalid if it is damaged, or if a lock, a prune marker or any
    other manifest is (the prune after the drop would refuse: nothing is
    removed rather than half)."""
    m = repo.read_manifest(backup_id, require_body=False)
    refuse_writing(repo, backup_id, m)  # the manifest first, then its lock
    repo.check_prunable()
    repo.referenced_objects()  # BackupInvalid for a manifest it cannot read
    return m["namespace"], {o.oid for o in load_header(m).objects}


class PruneFailed(CairnError):
    """The manifests of `dropped` ((backup id, 0) each) are gone from the
    target, but freeing their objects failed with `error`: the drop happened
    (the server's catalog forgets them), and what they alone used stays until
    a later prune of every object (`everything` in the next drop's)."""

    def __init__(self, dropped: list[tuple[str, int]], error: CairnError,
                 pruning: bool = True) -> None:
        super().__init__(error.message)
        self.dropped, self.error, self.pruning = dropped, error, pruning
        self.code, self.status = error.code, error.status

    def __reduce__(self) -> tuple[Any, ...]:  # crosses from the job process
        return (PruneFailed, (self.dropped, self.error, self.pruning))


def drop_and_prune(repo: Repository, backup_id: str, candidates: set[str], work: Work,
                   everything: bool = False) -> int:
    """Remove the manifest, then every object of `candidates` nothing else
    uses (`prune_dropped`; every object when `everything`): bytes freed. The
    manifest goes once the prune's marker is written (one that cannot be is
    a refusal with nothing removed); a prune failing after it is PruneFailed."""
    gone: list[tuple[str, int]] = []

    def remove() -> None:
        # A KILL that ended the job while this call waited on the store (run
        # in the server: jobcalls.py) stops it before anything goes: a killed
        # DROP said `cancelled` and then dropped the backup once the store
        # answered.
        work.fault("drop.before_manifest", backup_id=backup_id)
        work.check_cancelled()
        repo.delete_manifest(backup_id)
        gone.append((backup_id, 0))

    try:
        return prune_dropped(repo, backup_id, None if everything else candidates, work,
                             first=remove)
    except CairnError as exc:
        if not gone:
            raise
        raise PruneFailed(gone, exc) from exc


def keep_newest(repo: Repository, namespace: str, keep: int, work: Work,
                prune_archive: Callable[[Repository, str], int] | None = None,
                everything: bool = False, written: str | None = None,
                origin: Origin | None = None,
                busy: Iterable[str] = ()) -> tuple[list[tuple[str, int]], list[str]]:
    """keep_last, and the ids of the manifests it could not read that may be
    `namespace`'s (damaged, or not served now: a store answering 503), neither
    counted nor dropped. Before, with every older manifest answering 503, a
    keep_last said `completed` with `dropped: []`, only the log telling why.
    The job's `result.not_read` now names them (`_keep_newest`)."""
    listed = repo.list_manifests(light=True)  # summaries: what it drops is read again
    unread = [m["backup_id"] for m in listed if "error" in m and may_be_of(m, namespace)]
    return _keep_newest(listed, repo, namespace, keep, work, prune_archive, everything,
                        written, origin, busy), unread


def _keep_newest(listed: list[dict[str, Any]], repo: Repository, namespace: str, keep: int,
                 work: Work, prune_archive: Callable[[Repository, str], int] | None,
                 everything: bool, written: str | None, origin: Origin | None,
                 busy: Iterable[str]) -> list[tuple[str, int]]:
    """keep_last: drop `namespace`'s whole backups in the target beyond the
    newest `keep` (not table backups, nor members of a backup set: those go
    with their set; with `origin`, only backups of this server's namespace:
    another server's namespace of the same name is another database), oldest first, so one stopped halfway (a crash, a
    failure) leaves the newest without a gap among them. A backup another
    drop removed first (a keep_last beside this one, a DROP BACKUP) is
    skipped, and so is one still being written: its lock in the target
    (writing.py), or its id in `busy` (the server's backup jobs not ended). Then, if any went, `prune_archive(repo, namespace)` (the
    archived changes no base left needs). The dropped backups, newest first,
    each with the bytes its drop freed (the archive's prune counted in the
    oldest's). The manifests go once the prune's marker is written; a prune
    failing after any went is PruneFailed naming them. `everything`: the
    prune looks at every object (a failed one left some).

    One job-process call for what was four a dropped backup (the listing,
    each drop's plan and prune, the archive's prune): each call's messages
    were a few takes of the server's GIL beside the statements
    (docs/performance.md, bench/gil_takes.py)."""
    # An encrypted manifest this instance cannot open is its header alone, and
    # its scope is in the sealed part: a table backup or a set member of the
    # namespace looks like a whole backup. Counted as one, a plain keep_last
    # dropped them (and a set's member, leaving the set unrestorable): what
    # it cannot tell is neither counted nor dropped.
    own = [m for m in listed
           if "error" not in m and m["namespace"] == namespace and m.get("scope") is None
           and not (m.get("encrypted") and "tables" not in m)
           and (origin is None or origin.owns(m))]
    # One of this server's BACKUPs whose manifest landed and whose job has not
    # ended (its record not in yet) is neither counted nor dropped: a later
    # keep_last takes it.
    own = [m for m in own if origin is None or origin.in_flight(m) is None]
    if origin is not None and not all(origin.written_here(m) for m in own):
        # Another data directory with this server's id (a copy, or this one
        # before a roll-back) writes here: the backups naming this server that
        # its catalog does not record are neither counted nor dropped.
        strange = [m["backup_id"] for m in own if not origin.written_here(m)]
        log.warning("keep_last in %s left backups %s alone: they name this server but its "
                    "catalog has no record of writing them (a copy of its data directory, or "
                    "itself before it was brought back from an older copy, wrote them)",
                    repo.uri, ", ".join(strange[:5]))
        own = [m for m in own if origin.written_here(m)]
    own = [m for m in own if origin is None or m["backup_id"] not in origin.inherited]
    # Newest snapshot first (Repository.list_manifests); `written`, the backup
    # the BACKUP just wrote, is kept even if an older snapshot than the newest N.
    doomed = [m["backup_id"] for m in own[keep:] if m["backup_id"] != written]
    # Locks read after the listing: a backup without one was whole before it.
    writing = set(busy) | set(held(repo, {i for b in doomed for i in lock_ids(b)}))
    doomed = [b for b in doomed if not lock_ids(b) & writing]
    damaged = [m for m in listed if "error" in m]
    if doomed and damaged:
        # Each drop's prune would refuse after its manifest went: refused here,
        # before anything is removed (what the damaged one uses is unknown).
        # Unavailable when every one of them only cannot be read now (scan.py).
        kind = Unavailable if all(m.get(UNAVAILABLE) for m in damaged) else BackupInvalid
        raise kind(
            f"cannot tell which objects are in use: {damaged[0]['error']}; nothing was dropped")
    if not doomed:
        return []
    repo.check_prunable()
    # The manifests go oldest first, then one prune of what they used: a prune
    # a drop rereads every manifest, and N planted copies of one manifest took
    # N^2 reads (1,000: 76 s). A crash before the prune leaves objects that
    # start-up sweeps (the job's cleanup), never a newer backup gone before
    # an older one.
    headers: list[tuple[str, list[Any]]] = []
    for backup_id in reversed(doomed):
        try:
            headers.append((backup_id, load_header(
                repo.read_manifest(backup_id, require_body=False)).objects))
        except NotFound:
            if repo.has_manifest(backup_id):
                raise
    if not headers:
        return []
    gone: list[tuple[str, list[Any]]] = []
    removed = False

    def remove() -> None:
        nonlocal removed
        work.check_cancelled()  # killed while waiting on the store: nothing goes
        for backup_id, objects in headers:
            try:
                repo.delete_manifest(backup_id)
            except NotFound:
                if repo.has_manifest(backup_id):
                    raise
                continue
            gone.append((backup_id, objects))
        removed = True

    freed_oids: set[str] = set()
    candidates = {o.oid for _, objects in headers for o in objects}
    try:
        prune_dropped(repo, headers[0][0], None if everything else candidates, work,
                      freed_oids, first=remove)
    except CairnError as exc:
        if not gone:
            raise
        raise PruneFailed([(b, 0) for b, _ in gone[::-1]], exc, pruning=removed) from exc
    if not gone:
        return []
    dropped: list[tuple[str, int]] = []
    for backup_id, objects in gone:  # each object's bytes to the oldest that used it
        mine = {o.oid: o.size for o in objects if o.oid in freed_oids}
        freed_oids -= set(mine)
        dropped.append((backup_id, sum(mine.values())))
    if prune_archive is not None:
        backup_id, freed = dropped[0]
        dropped[0] = (backup_id, freed + prune_archive(repo, namespace))
    return dropped[::-1]
