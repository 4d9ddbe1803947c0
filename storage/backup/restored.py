"""A namespace a RESTORE made (a refresh from another server's backup, a
rollback to an older one of its own): what its record keeps of where its
history comes from (`Namespace.restored_from`), and which backup holds its
state at a time (RESTORE … as_of without backup_id, origin.choose_own).

The lineage rule (a namespace restored from server A takes A's backups as its
own, so a drill server refreshes from production with a plain RESTORE) is for
the newest backup. At a time, this namespace held what the restore in effect
then installed, then what this server wrote: A's database went on after the
backup restored, and its later backups hold rows this namespace never had
(restored over its own, `completed`, until 2026-12-07)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from catalog import Namespace
from catalog.errors import InvalidArgument, NotFound

from .selection import parse_time


class Origin(Protocol):
    """What these rules read of an origin.Origin: this server, and its
    namespace's creation time and record of where it came from."""

    @property
    def server(self) -> str: ...
    @property
    def created_at(self) -> str | None: ...
    @property
    def restored_from(self) -> dict[str, str] | None: ...

KEPT = 16  # earlier restores a record keeps (`earlier`); a time before them: see held_by


def restored_namespace(dest: str, m: Any, server: str, previous: Namespace | None,
                       replayed: bool = False) -> Namespace:
    """The record a RESTORE of manifest `m` into `dest` on this server (`server`)
    installs: the backed-up namespace's creation time and options, and where
    its history now comes from (`restored_from`): `server`, the server whose
    database it is (`m`'s writer; "" for a manifest older than the field),
    `at`, when this restore installed (µs), `backup`, the backup it restored
    ("" when archived changes were replayed on it, `replayed`: no backup holds
    the state restored), `upto`, the newest snapshot of that server's
    backups the history holds ("": not known), and `earlier`, the restores
    before it of the same database (JSON: a list of such records, the last
    KEPT). A restore of this server's own backup of a namespace that came from
    another keeps that server and bounds `upto` by the backup's snapshot.
    Since 2026-12-07 (`backup`, `upto` and `earlier` later that day)."""
    record = m.namespace_record
    writer = record.server if isinstance(record.server, str) else ""
    taken = str(m.snapshot_at)
    came_from = {"server": writer, "at": now_us(), "backup": "" if replayed else str(m.backup_id),
                 "upto": taken}
    before = previous.restored_from if previous is not None \
        and previous.created_at == record.created_at else None
    if before is not None and writer == server:
        came_from["server"] = str(before.get("server", writer))
        limit = before.get("upto", before.get("at"))  # a record of the first 2026-12-07 kept `at`
        came_from["upto"] = _earlier(str(limit), taken) if limit else ""
    if before is not None and before.get("at"):
        entries = _entries(before)
        kept = entries[-KEPT:]
        came_from["earlier"] = json.dumps(kept, separators=(",", ":"))
        dropped = entries[:-KEPT]
        lost = dropped[-1]["at"] if dropped else before.get("lost", "")
    else:  # another database before (its restores forgotten), or none restored
        gone = previous.restored_from if previous is not None else None
        lost = str(gone.get("at") or "") if gone else ""
        if previous is not None:  # it replaced a namespace of this server's (held_by)
            came_from["over"] = "1"
    if lost:  # the newest restore the record no longer keeps (see held_by)
        came_from["lost"] = lost
    return Namespace(dest, created_at=record.created_at, options=dict(record.options),
                     restored_from=came_from)


def now_us() -> str:
    """The wall clock as an ISO-8601 UTC time to the microsecond: a backup's
    snapshot_at is to the µs, so a restore's `at` to the ms (as until
    2026-12-07) ranked a backup of the same millisecond taken before it after it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _earlier(a: str, b: str) -> str:
    try:
        return a if parse_time(a) <= parse_time(b) else b
    except InvalidArgument:  # a time that does not read: not known
        return ""


def _entries(source: dict[str, str]) -> list[dict[str, str]]:
    """The restores a record keeps, oldest first: its `earlier` ones (a value
    that does not read is none), then itself (without `earlier`)."""
    try:
        listed = json.loads(source.get("earlier") or "[]")
    except ValueError:
        listed = []
    kept = [e for e in listed if isinstance(e, dict) and isinstance(e.get("at"), str)
            and all(isinstance(v, str) for v in e.values())] if isinstance(listed, list) else []
    return [*kept, {k: v for k, v in source.items() if k != "earlier"}]


def era(source: dict[str, str], as_of: str) -> dict[str, str] | None:
    """The restore in effect at `as_of`: the newest one that installed at or
    before it (None: before every one kept, or the record keeps no time)."""
    found = None
    for e in _entries(source):
        if e.get("at") and _at_or_after(as_of, e["at"]):
            found = e
    return found


def by_then(repo: Any, namespace: str, as_of: str | None,
            accept: Callable[[dict[str, Any]], bool], own: Callable[[dict[str, Any]], bool],
            origin: Origin, what: str | None) -> dict[str, Any] | None:
    """For a time (`as_of`) on a namespace a RESTORE made: the backup holding its
    state then, None when the rule does not apply (no time, no such record).
    With the restore in effect then (`era`): the newest backup this server
    wrote after it by then, else the backup it restored, by id (whoever's:
    `accept` alone) — NOT_FOUND when that is gone, or when the restore
    replayed archived changes (no backup holds what it installed). Before
    every restore kept: the newest by then of this server's own and of the
    server restored from's taken no later than the first one restored
    (held_by). `own`: the lineage rule's backups (origin.taken_as_own)."""
    if as_of is None or not origin.restored_from or origin.created_at is None:
        return None
    source = origin.restored_from
    e = era(source, as_of)
    if e is not None:
        try:
            since = parse_time(e["at"])
            return dict(repo.choose_backup(
                namespace, None, as_of, what=what,
                accept=lambda m: own(m) and names_no_other(origin, m) and _after(m, since)))
        except NotFound:
            pass
        backup, at = e.get("backup"), e["at"]
        if backup == "":
            raise NotFound(
                f"namespace '{namespace}' was restored to a time (archived changes replayed "
                f"on a base backup) at {at}, and this server took no backup of it since by "
                f"{as_of} in target '{repo.uri}': no backup holds its state then; nothing was "
                "restored. Name a backup with backup_id = '…' (with as_of, a base and a time)")
        if backup:
            listed = next((m for m in repo.listing(namespace) if m.get("backup_id") == backup),
                          None)
            if listed is not None and ("error" in listed or accept(listed)):
                return dict(repo.read_manifest(backup))  # a damaged one says why
            gone = (f"is not among the backups of namespace '{namespace}' in target "
                    f"'{repo.uri}' (dropped, or restored from under another name)"
                    if listed is None else
                    f"in target '{repo.uri}' does not hold {what or 'this namespace whole'}")
            raise NotFound(
                f"namespace '{namespace}' was restored from backup '{backup}' at {at}, and "
                f"this server took no backup of it since by {as_of}; backup '{backup}' {gone}, "
                "so no backup there holds its state then (another of that database's backups "
                "does not: it holds rows this namespace did not, or lacks some it did); "
                "nothing was restored. Name a backup with backup_id = '…'")
    try:
        return dict(repo.choose_backup(namespace, None, as_of, what=what,
                                       accept=lambda m: own(m) and held_by(origin, as_of, m)))
    except NotFound:
        if source.get("at"):
            raise
    raise NotFound(
        f"namespace '{namespace}' was restored from server '{source.get('server')}''s backup "
        "before Cairn recorded which backup and when (a restore before 2026-12-07), and this "
        f"server took no backup of it by {as_of} in target '{repo.uri}': which of that "
        "server's backups held this namespace's state then is not known; nothing was "
        "restored. Name a backup with backup_id = '…' (SHOW BACKUPS IN lists them)")


def held_by(origin: Origin, as_of: str, m: dict[str, Any]) -> bool:
    """Whether the listed backup `m` (of this server's namespace's lineage,
    `Origin.owns`, or one it was restored from) may hold the namespace's state
    at `as_of` when this server took no backup of it since the restore in
    effect then (`era`, by_then): that restore's backup, or (a record of the
    first 2026-12-07 that did not keep it) the newest of the server restored
    from taken by then; before every restore kept, a backup of this server's
    own taken after the newest restore the record forgot (`lost`), or, when
    the first restore kept made the namespace here (nothing `over`), one of the
    server restored from taken no later than the first backup restored. A namespace whose record keeps no time (restored
    before 2026-12-07) takes only backups of this server's own: which of the
    other server's it held is not known."""
    source = origin.restored_from or {}
    mine = names_no_other(origin, m)
    if not source.get("at"):
        return mine
    try:
        taken = parse_time(str(m.get("snapshot_at")))
        e = era(source, as_of)
        if e is not None:
            at = parse_time(e["at"])
            if "backup" in e:  # "": archived changes replayed, no backup holds it
                return m.get("backup_id") == e["backup"] or (mine and taken > at)
            return taken > at if mine else taken <= at
        # Before every restore kept: only this server's own backups taken after
        # the newest restore the record forgot (`lost`: past KEPT, or a restore
        # of another database: what it held before is not known); and when the
        # first restore replaced a namespace of this server's (`over`), only its
        # own: the other server's backup was taken over this one's rows then.
        lost = source.get("lost", "")
        if lost:
            return mine and taken > parse_time(lost)
        first = _entries(source)[0]
        if mine or first.get("over"):
            return mine
        # The first restore made the namespace here: before it, its history is
        # the server restored from's, up to the first backup restored (`upto`).
        upto = first.get("upto", first["at"])
        return bool(upto) and taken <= parse_time(upto)
    except InvalidArgument:  # a time that does not read: not known to be
        return False


def _at_or_after(as_of: str, at: str) -> bool:
    try:
        return parse_time(as_of) >= parse_time(at)
    except InvalidArgument:
        return True


def _after(m: dict[str, Any], since: datetime) -> bool:
    try:
        return parse_time(str(m.get("snapshot_at"))) > since
    except InvalidArgument:
        return False


def names_no_other(origin: Origin, m: dict[str, Any]) -> bool:
    """Whether `m` names this server, or no server (written before manifests
    named one, or its body not read: then reading it says why): not the
    server this namespace was restored from (for a time: see by_then)."""
    record = m.get("namespace_record")
    server = record.get("server") if isinstance(record, dict) else None
    return server is None or server == origin.server


def wrote_since(origin: Origin, m: dict[str, Any]) -> bool:
    """`names_no_other`, and taken after this namespace was last restored
    (`restored_from["at"]`, kept since 2026-12-07): a backup of its own from
    before a refresh is of the history the refresh replaced (a restore to a
    time after the refresh took it over the backup the refresh restored)."""
    if not names_no_other(origin, m):
        return False
    at = (origin.restored_from or {}).get("at")
    if not at:
        return True
    try:
        # after: this server's snapshots of it are floored above `at`
        # (storage/snapshot.py); one at that very µs was taken before the restore
        return parse_time(str(m.get("snapshot_at"))) > parse_time(at)
    except InvalidArgument:  # no time: not known to be after it
        return False


def restored_then(origin: Origin, as_of: str, m: dict[str, Any]) -> bool:
    """Whether `m` is the backup the restore in effect at `as_of` restored (a
    backup of whichever server that restore took it from: `era`)."""
    e = era(origin.restored_from or {}, as_of)
    return e is not None and bool(e.get("backup")) and m.get("backup_id") == e["backup"]


def era_us(origin: Origin | None, as_of: str) -> int:
    """When the restore in effect at `as_of` installed, in µs since the epoch
    (0: none, or no record): archived changes of this namespace from before it
    are of the history it replaced, not a window for a time after it (an
    archive this server stopped before a refresh made every later time
    "after the newest restorable time", the backup restored never looked at)."""
    e = era(origin.restored_from or {}, as_of) if origin is not None else None
    if e is None:
        return 0
    try:
        since = parse_time(e["at"]) - datetime(1970, 1, 1, tzinfo=UTC)
    except InvalidArgument:
        return 0
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
