"""RESTORE TABLE in a namespace's record (`Namespace.restored_tables`): which
table each one installed, from which backup, when.

A RESTORE TABLE (with `replace`, or of a table dropped since) makes a table
hold what that backup held, not what this namespace's backups taken before it
hold: a RESTORE … as_of a time after it took the newest backup by then, the
table's rows it rolled back (a rollback to an older backup) or another
server's older backup's (a table pulled from its newer one), until
2026-12-07. The record keeps the last KEPT of them, oldest first; an entry
without `table` stands for those it no longer keeps (the newest one's `at`,
the oldest one's `first`): a time between the two may be after one of them,
so it is judged as after a restore not known (`in_effect`).
A time is judged by the newest in effect then (storage/backup/restored.py,
`table_cut`): this server's own backup taken after it, else, for that table
alone, exactly the backup it restored; the whole namespace, NOT_FOUND (no
backup holds its state then). A restore of the namespace itself (RESTORE
DATABASE / ALL) of the same database keeps them (a time before it is judged
by them); of another database, it forgets them (its `lost`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from catalog.errors import InvalidArgument

from .selection import parse_time

KEPT = 16  # the table restores a record keeps (then one entry without `table`)


def now_us() -> str:
    """The wall clock as an ISO-8601 UTC time to the microsecond: a backup's
    snapshot_at is to the µs, so a restore's `at` to the ms (as until
    2026-12-07) ranked a backup of the same millisecond taken before it after it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entries(value: Any) -> list[dict[str, str]]:
    """The table restores a record keeps, oldest first: entries of string
    values whose `at` reads as a time (one that does not read is none, as a
    record's `earlier` entries are; a value that is not a list, none: a
    record older than the field has none)."""
    if not isinstance(value, list):
        return []
    kept = []
    for e in value:
        if isinstance(e, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in e.items()) and _time(e.get("at")) is not None:
            kept.append(e)
    return kept


def recorded(previous: Any, table: str, m: Any, source_table: str,
             at: str | None = None, new: bool = False) -> list[dict[str, str]]:
    """`previous` (a record's `restored_tables`) with a RESTORE TABLE of table
    `source_table` of backup `m` installed as `table`: `table`, `at` (`at`, else
    now, to the µs: storage/clock_floor.py restore_at), `backup`, `server` (the
    backup's writer; "" not named) and `from` (`namespace.table` of the table
    restored), the last KEPT kept (then one entry for those forgotten: the
    newest one's `at`, the oldest one's `first`, when every one's is known).
    `new`: the table did not exist (it replaced none): `new` "1", and once a
    DROP TABLE drops it (`dropped`), it no longer counts for the namespace."""
    record = m.namespace_record
    writer = record.server if isinstance(getattr(record, "server", None), str) else ""
    entry = {"table": table, "at": at or now_us(), "backup": str(m.backup_id),
             "server": writer, "from": f"{m.namespace}.{source_table}"}
    listed = [*entries(previous), {**entry, "new": "1"} if new else entry]
    if len(listed) <= KEPT:
        return listed
    dropped = listed[:-KEPT + 1]
    forgotten = {"at": newest_at(dropped)}
    if all(_time(e.get("first" if "table" not in e else "at")) is not None for e in dropped):
        forgotten["first"] = min((e["first"] if "table" not in e else e["at"]
                                  for e in dropped), key=lambda t: _time(t) or _NEVER)
    return [forgotten, *listed[-KEPT + 1:]]


def dropped(value: Any, table: str) -> list[dict[str, str]] | None:
    """`value` (a record's `restored_tables`) with table `table` dropped now
    (DROP TABLE, in its catalog batch): each entry of it not yet dropped gets
    `dropped` (now, after its `at`). None: no entry of it. An entry that made
    the table (`new`: a copy restored beside, `AS app.t_check`) no longer
    counts for the namespace from then on (`in_effect`): until 2026-12-07 a
    copy restored and dropped again made every RESTORE DATABASE as_of a time
    after it NOT_FOUND until the next backup, one taken before holding the
    namespace as it then was."""
    listed = entries(value)
    if not any(e.get("table") == table and "dropped" not in e for e in listed):
        return None
    now = _time(now_us()) or _NEVER
    out = []
    for e in listed:
        if e.get("table") == table and "dropped" not in e:
            at = _time(e["at"]) or _NEVER
            when = now if now > at else at + timedelta(microseconds=1)
            e = {**e, "dropped": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        out.append(e)
    return out


def newest_at(value: Any) -> str:
    """The `at` of the newest table restore `value` (a list of entries) keeps
    ("": none)."""
    listed = entries(value)
    if not listed:
        return ""
    return max(listed, key=lambda e: _time(e["at"]) or datetime.min.replace(tzinfo=UTC))["at"]


def in_effect(value: Any, as_of: str, since: datetime | None,
              table: str | None) -> dict[str, str] | None:
    """The newest table restore `value` keeps that installed at or before
    `as_of` and not before `since` (when the namespace restore in effect then
    installed: one before it was replaced by it), of `table` (None: of any;
    an entry without `table`, restores no longer kept, is of every table, and
    in effect from its `first` on (unknown: any time) when its `at` is not
    before `since`: one of them may have installed by `as_of`; until
    2026-12-07 a time between a forgotten rollback and the next kept restore
    took the backup it rolled back). None: none, or `as_of` does not read."""
    limit = _time(as_of)
    if limit is None:
        return None
    found: tuple[datetime, dict[str, str]] | None = None
    for e in entries(value):
        at = _time(e["at"])
        if at is None or (since is not None and at < since):
            continue
        if at > limit and ("table" in e or (first := _time(e.get("first"))) is not None
                           and first > limit):
            continue
        if table is not None and "table" in e and e["table"] != table:
            continue
        if table is None and e.get("new") == "1" and (gone := _time(e.get("dropped"))) \
                is not None and gone <= limit:
            continue  # a table it made, dropped by then: the namespace as without it
        if found is None or at >= found[0]:
            found = (at, e)
    return found[1] if found is not None else None


_NEVER = datetime.min.replace(tzinfo=UTC)


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_time(text)
    except InvalidArgument:
        return None
