"""A target's manifests against this server's catalog record of their backups.

Whoever can write a target can put any manifest under a backup's name: a
plain copy of another backup's (its checksum is valid; it names that other
backup), or one re-sealed to say another namespace, time or scope. What such
bytes say of themselves decided which rows a RESTORE without backup_id
brought back: a copy of an older backup's manifest over the newest was judged
by the copy's namespace and times, so the newest counted as older and the
older one was restored (until 2026-12-06). What can be trusted is the file's
name (the backup id) and this server's record of that id (`system.backups`,
written from the manifest when this server made or attached the backup).
So a manifest that contradicts its record is damaged, and a damaged one's
namespace and times are its record's; without a record, only a manifest
naming its own file's backup id vouches for them (selection.hints)."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from catalog.errors import BackupInvalid, InvalidArgument

from .schema import Scope, load_header
from .selection import HINTS, parse_time

log = logging.getLogger(__name__)

# What a record says of a backup: its namespace, created_at and snapshot_at,
# its scope as SHOW BACKUPS says it (None: not known, an encrypted one
# attached without its passphrase), and `server`, this server's id when a
# BACKUP here made it (None: attached), which its manifest names.
Record = Mapping[str, str | None]


class Records(Protocol):
    """This server's records of the backups in one target (server/repos.py)."""

    def get(self, backup_id: str) -> Record | None: ...

    def all(self) -> Mapping[str, Record]: ...


@dataclass(frozen=True)
class Fixed:
    """Records as read once (what a job process receives)."""

    records: Mapping[str, Record]

    def get(self, backup_id: str) -> Record | None:
        return self.records.get(backup_id)

    def all(self) -> Mapping[str, Record]:
        return self.records


def unpickled(blob: bytes) -> Fixed:
    """Records a server sent its job process, pickled once while unchanged (server/repos.py)."""
    return Fixed(pickle.loads(blob))


def scope_text(scope: Scope | None) -> str:
    """What a backup holds, as SHOW BACKUPS says it: 'database' (the whole
    namespace), 'tables: t, u', or for a member of a backup set
    'all (set bk-…: a, b)' / 'databases (set bk-…: a, b)'."""
    if scope is None:
        return "database"
    if scope.kind == "tables":
        return "tables: " + ", ".join(scope.tables)
    return f"{scope.kind} (set {scope.set_id}: {', '.join(scope.namespaces)})"


def _same_time(a: Any, b: Any) -> bool:
    try:
        return bool(parse_time(a) == parse_time(b))
    except InvalidArgument:  # not a time: equal only as the same text
        return bool(a == b)


def contradiction(m: dict[str, Any], record: Record) -> str | None:
    """How readable manifest `m` contradicts `record`, its backup's record, or None."""
    h, writer = load_header(m), m.get("namespace_record")
    said = {"namespace": h.namespace, "created_at": h.created_at, "snapshot_at": h.snapshot_at,
            "scope": None if h.encrypted and "tables" not in m else scope_text(h.scope),
            # absent in a manifest written before 2026-12-05, or not opened
            "server": writer.get("server") if isinstance(writer, dict) else None}
    wrong = [k for k in ("namespace", "scope", "server") if None not in (said[k], record.get(k))
             and said[k] != record.get(k)]
    wrong += [k for k in ("created_at", "snapshot_at") if not _same_time(said[k], record.get(k))]
    if not wrong:
        return None
    was = ", ".join(f"{k} {record.get(k)!r}" for k in wrong)
    now = ", ".join(f"{k} {said[k]!r}" for k in wrong)
    return (f"manifests/{h.backup_id}.json contradicts this server's record of backup "
            f"'{h.backup_id}' (system.backups: {was}): it says {now}")


def check(records: Records | None, backup_id: str, m: dict[str, Any], uri: str) -> None:
    """BackupInvalid when manifest `m` of `backup_id` contradicts its record."""
    record = None if records is None else records.get(backup_id)
    problem = None if record is None else contradiction(m, record)
    if problem is not None:
        raise BackupInvalid(f"backup '{backup_id}' in target '{uri}' is damaged: {problem}")


def judged(records: Records | None, good: list[dict[str, Any]], bad: list[dict[str, Any]],
           uri: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A scan's readable manifests and damaged entries as this server's records
    tell them: a manifest contradicting its record is a damaged entry, and
    every damaged entry with a record has the record's namespace and times."""
    known = {} if records is None else records.all()
    if not known:
        return good, bad
    kept = []
    for m in good:
        record = known.get(m["backup_id"])
        problem = None if record is None else contradiction(m, record)
        if problem is None:
            kept.append(m)
        else:
            log.warning("damaged manifest in %s: %s", uri, problem)
            bad.append({"backup_id": m["backup_id"], "error": problem})
    return kept, [_trusted(e, known.get(e["backup_id"])) for e in bad]


def _trusted(entry: dict[str, Any], record: Record | None) -> dict[str, Any]:
    if record is None:
        return entry
    kept = {k: v for k, v in entry.items() if k not in HINTS}
    return {**kept, **{k: record[k] for k in HINTS if isinstance(record.get(k), str)}}
