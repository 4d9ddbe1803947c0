"""A backup still being written: DROP BACKUP and keep_last leave it alone.

A backup's manifest lands while its lock is still in the target (writer.py,
sets.py: the lock goes once the manifests are written), and its server
records it in its catalog only after that. A drop in between removed the
manifest but freed nothing (the lock still held the objects), and the record
came after the drop had forgotten it: the catalog listed a backup its target
no longer held, whose objects stayed with no manifest.

The lock is what tells, for every server sharing the target. A drop reads
the manifest, then the locks: a lock absent then was released after the
manifest was written, and none is made again for a backup whose manifest
exists (`Repository.lock`), so a backup found without one is held by its
manifest alone, and its prune frees what it alone used. The server's own
window after the lock goes (its job not yet ended, the record not yet put)
is server/backup_writing.py's."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from catalog.errors import AlreadyExists

from .pruning import LocksAndPrune


class StillWriting(AlreadyExists):
    """409 ALREADY_EXISTS: a drop of a backup whose job has not ended."""


def lock_ids(backup_id: str, header: dict[str, Any] | None = None) -> set[str]:
    """The locks that hold `backup_id` while it is written: its own and, for a
    member of a backup set (`<set_id>.<namespace>`, sets.py), its set's. The
    set id is in the name too: an encrypted member's scope is sealed."""
    ids = {backup_id, backup_id.split(".", 1)[0]}
    set_id = ((header or {}).get("scope") or {}).get("set_id")
    if isinstance(set_id, str):
        ids.add(set_id)
    return ids


def held(repo: LocksAndPrune, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The locks among `ids` in the target, by id, as a prune counts them:
    every one but a lock whose writer is provably dead and that was not
    written for a day (the prune removes it: `_left_over`). A damaged lock
    is not among them: the drop's `check_prunable` refuses it (422)."""
    if repo.target.kind == "archive":  # one backup, written whole: no locks
        return {}
    wanted = set(ids)
    return {doc["backup_id"]: doc for doc, info in repo._locks()
            if doc["backup_id"] in wanted and "error" not in doc
            and not repo._left_over(doc, info)}


def refuse_writing(repo: LocksAndPrune, backup_id: str,
                   header: dict[str, Any] | None = None) -> None:
    """StillWriting when `backup_id`'s lock (or its set's) is in the target:
    call after its manifest was found there."""
    locks = held(repo, lock_ids(backup_id, header))
    if locks:
        raise still_writing(backup_id, repo.uri, writer=next(iter(locks.values())))


def still_writing(backup_id: str, uri: str, job_id: str | None = None,
                  writer: dict[str, Any] | None = None) -> StillWriting:
    """The refusal, naming the job (this server's) or the lock in the target."""
    what = f"backup '{backup_id}' in target '{uri}' is still being written"
    if job_id is not None:
        return StillWriting(f"{what} by job '{job_id}'; drop it once that job has ended")
    lock = (writer or {}).get("backup_id", backup_id)
    by = f"its lock 'locks/{lock}.json' is in the target"
    if writer is not None:
        host = writer["host"]
        by += f" (process {writer['pid']} on " + (
            "this host)" if host == socket.gethostname() else f"host '{host}')")
    return StillWriting(f"{what}: {by}; drop it once its job has ended")
