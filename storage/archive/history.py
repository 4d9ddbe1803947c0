"""A replayed table's schema versions, checked one at a time as they are added.

`check_table` (storage/backup/schema.py) checks a table entry whole: every
schema version, and every version against the newest one. Run again on each
replayed ALTER it made a window of V versions O(V^2): 800 versions (400 ADD /
DROP COLUMN pairs) took a RESTORE ... WITH (as_of) 20-29 s and VERIFY ARCHIVE
26-39 s, against 1 s for the ALTERs themselves. `History` checks the whole
entry once, then each new version on its own (as a one-version entry:
check_table's conversion, time, columns and key checks, in time of its own
columns) and against the versions before it through an index of which
versions hold each column as what (the one check of the whole entry that
looks at other versions: a current column's `since` says every version from
then holds it, of the same type). A version found wrong is checked with the
whole entry again, so a refusal says exactly what `check_table` says."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import msgspec

from catalog.errors import BackupInvalid

from ..backup.schema import SchemaEntry, TableEntry, check_table

# What a column is in a version, as the `since` check compares it.
_Kind = tuple[str, str, tuple[int, ...]]


class History:
    """The schema versions of a table entry (a dict as a manifest holds it,
    already checked by `check_table` or checked here once, whole)."""

    def __init__(self, entry: dict[str, Any], typed: TableEntry | None = None) -> None:
        self.table = check_table(entry) if typed is None else typed
        self.raw = {int(s["version"]): s for s in entry["schemas"]}  # as the manifest holds them
        self.typed = {s.version: s for s in self.table.schemas}
        self.versions: list[int] = []  # ascending
        self.holding: dict[_Kind, list[int]] = {}  # each ascending
        for v in sorted(self.typed):
            self._index(self.typed[v])

    def __contains__(self, version: int) -> bool:
        return version in self.typed

    @property
    def newest(self) -> int:
        return self.table.schema_version

    def columns(self, version: int) -> list[dict[str, Any]]:
        """The columns of `version` as the manifest holds them."""
        columns: list[dict[str, Any]] = self.raw[version]["columns"]
        return columns

    def of(self, version: int) -> TableEntry:
        """The table with only `version` (what rowchecks.Checks reads of it)."""
        return msgspec.structs.replace(self.table, schemas=[self.typed[version]],
                                       schema_version=version, files=[], rows=0, max_seq=0,
                                       live_rows=None)

    def add(self, entry: dict[str, Any], schema: dict[str, Any]) -> None:
        """`schema` (a version above every one held) added to `entry`, the
        table's entry, if the entry with it is one `check_table` takes;
        BackupInvalid (check_table's message) otherwise."""
        t = self.table
        alone = {"name": t.name, "table_type": t.table_type, "schema_version": schema["version"],
                 "primary_key": list(t.primary_key), "options": dict(t.options),
                 "created_at": t.created_at, "schemas": [schema], "files": [], "rows": 0,
                 "max_seq": 0}
        try:
            s = check_table(alone).schemas[0]
        except BackupInvalid:
            s = None
        if s is None or not self._fits(s):
            whole = {**entry, "schemas": [*entry["schemas"], schema],
                     "schema_version": schema["version"]}
            self.table = check_table(whole)  # raises what is wrong
            s = self.table.schema()  # (never here: the checks agree)
        else:  # (in place: a copy of the list would be O(V) again)
            t.schemas.append(s)
            t.schema_version = s.version
        entry["schemas"].append(schema)
        entry["schema_version"] = s.version
        self.raw[s.version] = schema
        self.typed[s.version] = s
        self._index(s)

    def _fits(self, s: SchemaEntry) -> bool:
        """Every version from a column's `since` on (before `s`) holds it as
        `s` does: check_table's check of the newest columns against every
        version, by counting instead of visiting them."""
        if self.versions and s.version <= self.versions[-1]:
            return False
        for c in s.columns:
            since = bisect_left(self.versions, c.since)
            held = self.holding.get((c.name, c.type, tuple(c.params)), [])
            if len(self.versions) - since != len(held) - bisect_left(held, c.since):
                return False
        return True

    def _index(self, s: SchemaEntry) -> None:
        self.versions.append(s.version)
        for c in s.columns:
            self.holding.setdefault((c.name, c.type, tuple(c.params)), []).append(s.version)
