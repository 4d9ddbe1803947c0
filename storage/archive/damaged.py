"""Backups whose manifest cannot be read, as possible bases of archived runs.

A restorable window needs a base backup; a base whose manifest is damaged (a
flipped byte, or refused by rules made after it was written) was dropped with
the other unreadable manifests, and its window vanished: SHOW RESTORE POINTS
listed nothing, VERIFY ARCHIVE called the archive valid with no window, and a
RESTORE `as_of` a time inside it answered NOT_FOUND "no backup … taken at or
before". A damaged manifest is listed with what its own checksum vouches for
(selection.damaged_entry); one whose snapshot is unknown, or inside a run's
time, may be that run's base, and is named wherever the window would be."""

from __future__ import annotations

from typing import Any

from storage.backup import Repository
from storage.backup.selection import unreadable

from . import store

Damaged = dict[str, Any]  # {"backup_id", "error"} and the hints its checksum vouches for


def bases_and_damaged(repo: Repository, namespace: str,
                      entries: list[dict[str, Any]] | None = None,
                      ) -> tuple[list[store.Base], list[Damaged]]:
    """The namespace's readable backups as possible bases (store.bases_of),
    and the damaged ones that may be of it, from one listing of the target
    (`entries` when given)."""
    bases: list[store.Base] = []
    damaged: list[Damaged] = []
    for m in repo.listing(namespace) if entries is None else entries:
        if "error" in m:
            damaged.append(m)
        elif (b := store._base(m)) is not None:
            bases.append(b)
    return bases, damaged


def snapshot_us(d: Damaged) -> int | None:
    """The damaged backup's snapshot time, if its own checksum vouches for it."""
    text = d.get("snapshot_at")
    if not isinstance(text, str):
        return None
    try:
        return store.parse_us(text)
    except (ValueError, OverflowError):
        return None


def may_base(d: Damaged, run: store.Run) -> bool:
    """Whether the damaged backup may be a base of `run` (its time unknown, or inside the run's)."""
    at = snapshot_us(d)
    return at is None or run.after_us <= at <= run.through_us


def taken_by(d: Damaged, as_of_us: int) -> bool:
    """Whether the damaged backup may have been taken at or before `as_of_us`."""
    at = snapshot_us(d)
    return at is None or at <= as_of_us


def why(repo: Repository, d: Damaged) -> str:
    return f"backup '{d['backup_id']}' in target '{repo.uri}' cannot be read: {d['error']}"


def refuse(repo: Repository, namespace: str, as_of: str, found: list[Damaged]) -> None:
    """BACKUP_INVALID naming the first of `found`, damaged backups that may be
    the base a RESTORE to `as_of` needs: never NOT_FOUND or "in no window"
    because the base cannot be read (plain RESTORE refuses alike when a
    damaged backup may be the newest, selection.choose)."""
    if found:
        d = found[0]
        raise unreadable(d)(
            f"backup '{d['backup_id']}' in target '{repo.uri}' cannot be read and may be the "
            f"base backup of namespace '{namespace}' a restore to {as_of} needs; nothing was "
            f"restored: {d['error']}")


def point_rows(repo: Repository, namespace: str, runs: list[store.Run],
               damaged: list[Damaged]) -> list[dict[str, Any]]:
    """SHOW RESTORE POINTS rows for runs a damaged backup may be the base of:
    the window it would start, with `error` saying why it is not restorable."""
    out = []
    for d in damaged:
        for run in runs:
            if may_base(d, run):
                start = snapshot_us(d)
                out.append({
                    "namespace": namespace,
                    "start_time": store.iso(run.after_us if start is None else start),
                    "end_time": store.iso(run.through_us), "base_backup_id": d["backup_id"],
                    "base_backups": 0, "segments": len(run.segments),
                    "archive_id": run.archive_id, "error": why(repo, d),
                })
    return out
