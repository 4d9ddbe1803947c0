"""A backup set: several namespaces snapshotted at one instant, stored as one
manifest per namespace (BACKUP DATABASE a, b and BACKUP ALL).

Each member is a complete backup of its namespace (RESTORE DATABASE a takes
it like any other), named `<set_id>.<namespace>`, whose `scope` names the set
and every namespace in it. One lock (named `set_id`) holds every object of
every member while they are stored; the manifests are written last, one after
the other. Should a run fail between two manifests, the members already
written are removed before the lock is abandoned, so a set is in the target
whole or not at all (a crash there is finished by the job's start-up
clean-up, which removes an incomplete set's members)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from catalog import utcnow
from catalog.errors import CairnError, Cancelled, Unavailable

from ..work import Work
from . import footers, nullkeys, room, schema
from .image import NamespaceImage
from .repository import Repository
from .selection import parse_time
from .writer import store_counting


def member_id(set_id: str, namespace: str) -> str:
    return f"{set_id}.{namespace}"


def write_set(
    repo: Repository,
    images: list[NamespaceImage],
    set_id: str,
    kind: str,
    *,
    snapshot_at: str,
    label: str | None,
    work: Work,
    spent: Callable[[int], None] | None = None,
) -> list[schema.Manifest]:
    """Store every image's files, then publish one manifest per namespace;
    the manifests as stored, in namespace order. A member is no base of an
    archive (`archive` null): its snapshot_at is the set's instant, not its
    namespace's cut, which archived changes continue from."""
    images = sorted(images, key=lambda i: i.namespace)
    for image in images:
        image.export_buffers()
    room.check(images)  # before the long work, when a manifest is sure to be too big
    footers.check(images)  # and when a restore would refuse a file's footer
    nullkeys.check(images)  # or a file holding a NULL key
    namespaces = [i.namespace for i in images]
    files = [f for i in images for f in i.files]
    work.progress(files_total=len(files), bytes_total=sum(f.size for f in files), files_done=0,
                  bytes_done=0, force=True)
    written: list[str] = []
    out: list[schema.Manifest] = []
    with repo.lock(set_id, should_stop=lambda: work.cancelled,
                   oids=[f.sha256 for i in images for f in i.files]) as lock:
        done = store_counting(repo, work, images, lock, spent)
        written_by: list[int] = []
        start = 0
        for image in images:
            written_by.append(sum(done.written[start:start + len(image.files)]))
            start += len(image.files)
        work.fault("backup.before_manifest")
        try:
            for image, bytes_written in zip(images, written_by, strict=True):
                work.check_cancelled()
                backup_id = member_id(set_id, image.namespace)
                doc = repo.write_manifest({
                    "backup_id": backup_id,
                    "namespace": image.namespace,
                    "created_at": utcnow(),
                    "snapshot_at": snapshot_at,
                    "label": label,
                    "scope": {"kind": kind, "set_id": set_id, "namespaces": namespaces},
                    "namespace_record": schema.to_doc(image.record),
                    "max_seq": image.max_seq,
                    "tables": [schema.to_doc(t) for t in image.tables],
                    "totals": {"bytes_written": bytes_written,
                               "live_rows": image.live_rows},
                    "archive": None,
                })
                written.append(backup_id)
                out.append(schema.load(doc))
                work.fault("backup.between_manifests", index=len(written))
            if work.cancelled:  # killed while the last was written: a cancelled job has none
                raise Cancelled(f"backup set '{set_id}' was cancelled")
            work.fault("backup.after_manifest")
        except BaseException:  # not whole, or its job failed: none of it stays
            for backup_id in written:
                with contextlib.suppress(Exception):
                    repo.delete_manifest(backup_id)
            raise
    work.progress(files_done=done.files_done, bytes_done=done.bytes_done, force=True)
    return out


def being_written(repo: Repository) -> set[str]:
    """The ids of the sets whose lock is in the target: still being written
    (member by member), or left by a writer that died. Their members are not
    a whole set yet: listed as being written, never taken by RESTORE, nor
    counted or dropped by keep_last."""
    return {lock["backup_id"] for lock in repo.list_locks()}


def refuse_newer_locked(entries: list[dict[str, Any]], writing: set[str], after: str,
                        uri: str, counts: Callable[[dict[str, Any]], bool]) -> None:
    """Unavailable when a backup, or a member of a set, whose lock is in the
    target (`writing`) was taken after `after` (the snapshot a RESTORE without
    backup_id chose): it is being written (its manifest landed, its job able to
    fail or be killed and remove it yet: a killed in-process S3 BACKUP's
    manifest was restored by another server, then deleted) or its lock was
    left or put back. Neither is taken,
    and an older backup is not restored in its stead: a lock copied while a
    set was written and put back after (or any file at its name) made RESTORE
    and RESTORE ALL restore the set before, `completed`. `counts`: the entries
    of the database restored (this server's namespace's)."""
    for h in entries:
        if "error" in h or not counts(h):
            continue
        set_id = (h.get("scope") or {}).get("set_id")
        if set_id is None and h.get("encrypted") is True and "." in h.get("backup_id", ""):
            set_id = h["backup_id"].split(".", 1)[0]  # sealed scope: the id names the set
        if h.get("backup_id") in writing:
            set_id = h["backup_id"]  # a backup alone: its own lock
        if set_id in writing and _later(h.get("snapshot_at"), after):
            what = "backup set" if set_id != h.get("backup_id") else "backup"
            raise Unavailable(
                f"{what} '{set_id}' in target '{uri}', newer than any whole backup, "
                f"has its lock in the target (locks/{set_id}.json): it is still being written, "
                "or its lock was left behind; nothing was restored. Retry once its BACKUP has "
                "ended, or name a backup with backup_id")


def _later(taken: Any, after: str) -> bool:
    try:
        return bool(isinstance(taken, str) and parse_time(taken) > parse_time(after))
    except CairnError:
        return False


def is_whole(members: list[dict[str, Any]]) -> bool:
    """Whether the listed members are every namespace their set names."""
    return bool(sorted(h["namespace"] for h in members) == members[0]["scope"]["namespaces"])


def writing_error(header: dict[str, Any], writing: set[str]) -> dict[str, str]:
    """SHOW BACKUPS IN's `error` for a member of a set being written (as ATTACH
    says), else nothing."""
    scope = header.get("scope")
    set_id = (scope or {}).get("set_id")
    if header.get("backup_id") in writing:  # a backup alone, its manifest in, its lock too
        return {"error": f"backup '{header['backup_id']}' is being written: its lock is in "
                         "the target (its job can still fail and remove it)"}
    if scope is None and header.get("encrypted") is True and "." in header.get("backup_id", ""):
        set_id = header["backup_id"].split(".", 1)[0]  # sealed scope: the id names the set
        if set_id in writing:
            return {"error": f"backup set '{set_id}' has its lock in the target: it is being "
                             "written, or its lock was left behind (its members are encrypted: "
                             "given the passphrase, RESTORE tells, and takes it once whole)"}
    if set_id not in writing:
        return {}
    return {"error": f"backup set '{set_id}' is being written: its lock is in the target "
                     "(a member of a set not yet whole)"}
