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

from .restored_tables import in_effect, newest_at
from .restored_tables import now_us as now_us  # clock_floor.restore_at reads it here
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
    @property
    def restored_tables(self) -> list[dict[str, str]] | None: ...

KEPT = 16  # earlier restores a record keeps (`earlier`); a time before them: see held_by


def restored_namespace(dest: str, m: Any, server: str, previous: Namespace | None,
                       replayed: bool = False, at: str | None = None) -> Namespace:
    """The record a RESTORE of manifest `m` into `dest` on this server (`server`)
    installs: the backed-up namespace's creation time and options, and where
    its history now comes from (`restored_from`): `server`, the server whose
    database it is (`m`'s writer; "" for a manifest older than the field),
    `at`, when this restore installed (µs; `at`, else the wall clock: the
    install passes clock_floor.restore_at, after every time handed out for
    it), `backup`, the backup it restored
    ("" when archived changes were replayed on it, `replayed`: no backup holds
    the state restored), `upto`, the newest snapshot of that server's
    backups the history holds ("": not known), and `earlier`, the restores
    before it of the same database (JSON: a list of such records, the last
    KEPT). A restore of this server's own backup of a namespace that came from
    another keeps that server and bounds `upto` by the backup's snapshot. The
    namespace's RESTORE TABLEs (`restored_tables`) are kept when `previous` is
    the same database, else forgotten (the newest's time in `lost`).
    Since 2026-12-07 (`backup`, `upto` and `earlier` later that day)."""
    record = m.namespace_record
    writer = record.server if isinstance(record.server, str) else ""
    taken = str(m.snapshot_at)
    came_from = {"server": writer, "at": at or now_us(), "backup": "" if replayed else str(m.backup_id),
                 "upto": taken}
    same = previous is not None and previous.created_at == record.created_at
    before = previous.restored_from if same and previous is not None else None
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
            if not same:  # and its RESTORE TABLEs, forgotten (restored_tables.py)
                lost = _later(lost, newest_at(previous.restored_tables))
    if lost:  # the newest restore the record no longer keeps (see held_by)
        came_from["lost"] = lost
    return Namespace(dest, created_at=record.created_at, options=dict(record.options),
                     restored_from=came_from,
                     restored_tables=previous.restored_tables if same and previous else None)


def _later(a: str, b: str) -> str:
    """The later of two times ("": none; one that does not read: the other)."""
    try:
        return a if not b or a and parse_time(a) >= parse_time(b) else b
    except InvalidArgument:
        return b if a else a


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


def table_cut(origin: Origin, as_of: str, table: str | None) -> dict[str, str] | None:
    """The newest RESTORE TABLE (of `table`; None: of any table) in effect at
    `as_of` (restored_tables.in_effect): installed by then, and not before the
    restore of the namespace in effect then (`era`; before every one kept, not
    before the newest the record forgot, `lost`). None: none."""
    source = origin.restored_from or {}
    e = era(source, as_of) if source.get("at") else None
    start = e["at"] if e is not None else source.get("lost", "")
    try:
        since = parse_time(start) if start else None
    except InvalidArgument:
        since = None
    return in_effect(origin.restored_tables, as_of, since, table)


def by_then(repo: Any, namespace: str, as_of: str | None,
            accept: Callable[[dict[str, Any]], bool], own: Callable[[dict[str, Any]], bool],
            origin: Origin, what: str | None, table: str | None = None) -> dict[str, Any] | None:
    """For a time (`as_of`) on a namespace a RESTORE made: the backup holding its
    state then, None when the rule does not apply (no time, no such record).
    With the restore in effect then (`era`): the newest backup this server
    wrote after it by then, else the backup it restored, by id (whoever's:
    `accept` alone) — NOT_FOUND when that is gone, or when the restore
    replayed archived changes (no backup holds what it installed). Before
    every restore kept: the newest by then of this server's own and of the
    server restored from's taken no later than the first one restored
    (held_by). `own`: the lineage rule's backups (origin.taken_as_own). After a
    RESTORE TABLE in effect then (of `table`, RESTORE TABLE's; of any, the
    whole namespace's): `by_table_restore`."""
    if as_of is None or origin.created_at is None:
        return None
    cut = table_cut(origin, as_of, table)
    if cut is not None:
        return by_table_restore(repo, namespace, as_of, accept, own, origin, what, table, cut)
    if not origin.restored_from:
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
                                       accept=lambda m: own(m) and held_by(origin, as_of, m,
                                                                           table)))
    except NotFound:
        if source.get("at"):
            raise
    raise NotFound(
        f"namespace '{namespace}' was restored from server '{source.get('server')}''s backup "
        "before Cairn recorded which backup and when (a restore before 2026-12-07), and this "
        f"server took no backup of it by {as_of} in target '{repo.uri}': which of that "
        "server's backups held this namespace's state then is not known; nothing was "
        "restored. Name a backup with backup_id = '…' (SHOW BACKUPS IN lists them)")


def by_table_restore(repo: Any, namespace: str, as_of: str,
                     accept: Callable[[dict[str, Any]], bool],
                     own: Callable[[dict[str, Any]], bool], origin: Origin, what: str | None,
                     table: str | None, cut: dict[str, str]) -> dict[str, Any]:
    """For a time (`as_of`) after the RESTORE TABLE `cut` (table_cut): the
    newest backup this server wrote after it by then; else, for RESTORE TABLE
    of the table it restored (`table`), exactly the backup it restored (by id,
    whoever's; NOT_FOUND when it is gone, or it was a table of another name
    or namespace); else NOT_FOUND: no backup holds the namespace's state then
    (one from before holds the table's rows the restore replaced, the one it
    restored the other tables as they were when it was taken)."""
    at = cut["at"]
    since = parse_time(at)
    try:
        return dict(repo.choose_backup(
            namespace, None, as_of, what=what,
            accept=lambda m: own(m) and names_no_other(origin, m) and _after(m, since)))
    except NotFound:
        pass
    named = cut.get("table")
    if named is None:
        raise NotFound(
            f"tables of namespace '{namespace}' were restored (RESTORE TABLE) up to {at}, "
            f"restores its record no longer keeps, and this server took no backup of "
            f"{what or 'it'} after them by {as_of} in target '{repo.uri}': which backup holds "
            "its state then is not known; nothing was restored. Name a backup with "
            "backup_id = '…'")
    backup, came = cut.get("backup", ""), cut.get("from", "")
    done = (f"table '{namespace}.{named}' was restored from table '{came}' of backup "
            f"'{backup}' at {at} (RESTORE TABLE), and this server took no backup of "
            f"{what or f'namespace {namespace!r}'} since by {as_of} in target '{repo.uri}'")
    if table is None:
        before = ("lacks that table (the restore made it; once it is dropped, the "
                  "namespace is judged without it)" if cut.get("new") == "1"
                  else "holds that table's rows the restore replaced")
        raise NotFound(
            f"{done}: no backup holds the namespace's state then (one taken before {before}, "
            "the one it restored the other tables as they were when it was taken); nothing "
            "was restored. Restore that table to "
            f"the time with RESTORE TABLE {namespace}.{named} FROM '…' WITH (as_of = "
            f"'{as_of}'), or name a backup with backup_id = '…'")
    if came != f"{namespace}.{table}":
        raise NotFound(
            f"{done}: no backup of table '{namespace}.{table}' holds its rows then; nothing "
            f"was restored. Restore it by name: RESTORE TABLE {came} FROM '…' AS "
            f"{namespace}.{table} WITH (backup_id = '{backup}')")
    listed = next((m for m in repo.listing(namespace) if m.get("backup_id") == backup), None)
    if listed is not None and ("error" in listed or accept(listed)):
        return dict(repo.read_manifest(backup))  # a damaged one says why
    gone = (f"is not among the backups of namespace '{namespace}' in target '{repo.uri}' "
            "(dropped)" if listed is None else
            f"in target '{repo.uri}' does not hold {what or 'that table'}")
    raise NotFound(
        f"{done}; backup '{backup}' {gone}, so no backup there holds the table's rows then "
        "(another does not: it holds rows the table did not, or lacks some it did); "
        "nothing was restored. Name a backup with backup_id = '…'")


def held_by(origin: Origin, as_of: str, m: dict[str, Any], table: str | None = None) -> bool:
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
    other server's it held is not known. After a RESTORE TABLE in effect then
    (of `table`; None: of any, table_cut): only this server's own backups
    taken after it."""
    source = origin.restored_from or {}
    mine = names_no_other(origin, m)
    cut = table_cut(origin, as_of, table)
    if cut is not None:
        return mine and _after(m, parse_time(cut["at"]))
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
    time after the refresh took it over the backup the refresh restored).
    And after its last RESTORE TABLE (`restored_tables`): one from before
    holds that table's rows the restore replaced."""
    if not names_no_other(origin, m):
        return False
    ats = [at for at in ((origin.restored_from or {}).get("at"),
                         newest_at(origin.restored_tables)) if at]
    try:
        # after: this server's snapshots of it are floored above `at`
        # (storage/snapshot.py); one at that very µs was taken before the restore
        return all(parse_time(str(m.get("snapshot_at"))) > parse_time(at) for at in ats)
    except InvalidArgument:  # no time: not known to be after it
        return False


def restored_then(origin: Origin, as_of: str, m: dict[str, Any]) -> bool:
    """Whether `m` is the backup the restore in effect at `as_of` restored (a
    backup of whichever server that restore took it from: `era`), with no
    RESTORE TABLE in effect then since (table_cut: then no backup holds the
    namespace's state)."""
    if table_cut(origin, as_of, None) is not None:
        return False
    e = era(origin.restored_from or {}, as_of)
    return e is not None and bool(e.get("backup")) and m.get("backup_id") == e["backup"]


def era_us(origin: Origin | None, as_of: str) -> int:
    """When the restore in effect at `as_of` installed, in µs since the epoch
    (0: none, or no record): archived changes of this namespace from before it
    are of the history it replaced, not a window for a time after it (an
    archive this server stopped before a refresh made every later time
    "after the newest restorable time", the backup restored never looked at).
    A RESTORE TABLE in effect then since (table_cut) counts alike."""
    if origin is None:
        return 0
    e = era(origin.restored_from or {}, as_of)
    cut = table_cut(origin, as_of, None)
    ats = [x["at"] for x in (e, cut) if x is not None]
    try:
        since = max(parse_time(at) for at in ats) - datetime(1970, 1, 1, tzinfo=UTC)
    except (InvalidArgument, ValueError):  # none, or a time that does not read
        return 0
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
