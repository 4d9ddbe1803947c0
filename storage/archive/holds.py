"""The archives a restore to a time is replaying: their segments stay.

A restore holds what it reads with a lock in the target (server/restore_hold.py,
`locks/rs-<id>.json`, naming its base's objects, which every prune keeps). A
restore to a time also reads, one by one beside its base's copy, the archived
segments after its base; a DROP BACKUP of that base, or a keep_last that drops
it, would prune them under it (store.prune: a run without a base goes). So its
lock is named for the archive too, `rs-<id>.<archive_id>` (a name any Cairn
reads as a lock like another), and the archive's prune leaves the segments of
an archive so named alone until the lock goes.

The prune reads the locks after the drop removed the base's manifest, and a
restore looks for its base's manifest after its lock is written (NOT_FOUND
when it is gone): so either the prune sees the lock, or the restore sees its
base gone and reads nothing."""

from __future__ import annotations

import socket
from typing import Any

import pyarrow.fs as pafs

from storage.backup import Repository
from storage.backup.procs import process_state
from storage.backup.prunes import parse_stamp, store_now_ns

PREFIX = "rs-"


def hold_id(lock_id: str, archive_id: str | None) -> str:
    """The name of a restore's lock `lock_id` (`rs-…`), for the archive it
    replays when `archive_id` is given."""
    return lock_id if archive_id is None else f"{lock_id}.{archive_id}"


def replayed(repo: Repository, live: bool = False) -> set[str]:
    """The archives whose segments a restore's lock in the target holds (a
    lock whose writer is provably dead, which a prune removes, holds none; a
    damaged one holds what its name says).

    With `live`, what VERIFY ARCHIVE and SHOW RESTORE POINTS excuse as held
    (a dropped base's run is then no loss): only a readable lock whose
    restore may still run. Not a damaged one, nor one of this host whose
    process is gone (whatever its age), nor one of another host not written
    for the target's `dead_lock_seconds`: such a lock (left by a restore that
    died, or planted) would otherwise hide a base really lost from them."""
    out = set()
    for doc, info in repo._locks():
        name = doc["backup_id"]
        if not (name.startswith(PREFIX) and "." in name):
            continue
        if live and ("error" in doc or not _running(repo, doc, info)):
            continue
        if live or "error" in doc or not repo._left_over(doc, info):
            out.add(name.split(".", 1)[1])
    return out


def _running(repo: Repository, doc: dict[str, Any], info: pafs.FileInfo) -> bool:
    """The restore that wrote lock `doc` may still run."""
    if doc["host"] == socket.gethostname():
        try:
            return process_state(doc["pid"], parse_stamp(doc["created_at"])) != "dead"
        except ValueError:  # a stamp no Cairn writes
            return False
    mtime = info.mtime_ns
    return mtime is None or (
        store_now_ns(repo.target, mtime) - mtime <= repo.dead_lock_seconds * 1e9)
