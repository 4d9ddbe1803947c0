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

from storage.backup import Repository

PREFIX = "rs-"


def hold_id(lock_id: str, archive_id: str | None) -> str:
    """The name of a restore's lock `lock_id` (`rs-…`), for the archive it
    replays when `archive_id` is given."""
    return lock_id if archive_id is None else f"{lock_id}.{archive_id}"


def replayed(repo: Repository) -> set[str]:
    """The archives whose segments a restore's lock in the target holds, for
    the prune (a lock whose writer is provably dead, which a prune removes,
    holds none; a damaged one holds what its name says). VERIFY ARCHIVE and
    SHOW RESTORE POINTS excuse only what a restore of their own server
    replays (server/restore_hold.py `held_here`): a lock in the target,
    planted fresh or naming a live process, hid a base really lost from them."""
    out = set()
    for doc, info in repo._locks():
        name = doc["backup_id"]
        if name.startswith(PREFIX) and "." in name and (
                "error" in doc or not repo._left_over(doc, info)):
            out.add(name.split(".", 1)[1])
    return out
