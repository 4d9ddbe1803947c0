"""What rows must be to be row versions Cairn could have written, told from
the rows alone: the checks of a backed-up file's values that need neither
its entry nor its footer, in one place for the two readers of such rows.

contents.values_problem runs them on each file of a backup, batch by batch;
the archive's replay (storage/archive/replay.py) on each block of rows it
replays. A RESTORE as_of writes the replayed rows into files, which a BACKUP
of the restored namespace copies: rows a file is refused for must be refused
in a segment too (a forged segment holding two first versions of one key
restored a table with two rows of one PRIMARY KEY, whose own backup no
restore then took).

For one schema version of a table (`Checks`): no NULL in `_seq`, `_user` or
a key column (`outside`, which also holds them to the bounds the caller
knows; a NaN key is taken: INSERT refuses one now, but releases until
2026-12-02 stored it, and their backups must restore); no NULL `_ow`,
`_deleted` or `_updated`; every other column as column_checks.Group holds it; a generated `_id` not above its row's `_seq`;
and the row versions of rowversions.Versions (no `_seq` twice, no key with
two first versions), fed across every batch of the file or table."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..types import DELETED, ID, OW, SEQ, UPDATED, USER
from .column_checks import Group
from .rowversions import Versions
from .schema import Column, TableEntry

# `_ow` as column_checks sees it (not a column of the table's schema)
OW_COLUMN = Column(name=OW, type="BOOLEAN", params=[], not_null=True, primary_key=False,
                   has_default=False, default=None, system=True, since=1)


class Checks:
    """The checks of a table's rows stored under one schema version."""

    def __init__(self, table: TableEntry, version: int) -> None:
        user = [USER] if table.table_type == "user" else []
        columns = {OW: OW_COLUMN, **{c.name: c for c in table.schema(version).columns}}
        self.keys = list(dict.fromkeys([*user, *table.primary_key]))  # a Versions' keys
        # `_seq`, `_user` and the keys: `outside`'s (bounded where the caller can)
        self.bounded = [SEQ, *self.keys]
        # every other column, `_ow` first, in the stored order: Group's
        self.columns = {n: c for n, c in columns.items() if n not in self.bounded}
        # Cairn never writes these NULL (a NULL `_deleted` hid its key from
        # SELECT while INSERT found it, forever).
        self.flags = [n for n in (OW, DELETED, UPDATED) if n in self.columns]
        self.generated = table.primary_key == [ID] and columns[ID].system

    def add(self, batch: pa.RecordBatch, group: Group, versions: Versions,
            skip: Container[str] = (), source: str = "") -> str | None:
        """What is wrong with `batch` (whose `bounded` columns `outside`
        found nothing wrong with), or None. `group` checks the other columns
        but those in `skip` (the caller checks them apart), `versions` the
        row versions (`source`: where the batch comes from, rowversions.py)."""
        for name in self.flags:
            if batch.column(name).null_count:
                return f"holds NULL {name} values"
        for name in self.columns:
            if name not in skip and (wrong := group.add(name, batch.column(name))) is not None:
                return wrong
        if self.generated and pc.any(pc.greater(batch.column(ID), batch.column(SEQ))).as_py():
            # `_id` is its row's first `_seq`: one past the table's sequence
            # would be handed out again, a key twice (found by trying)
            return "holds an _id above its row's _seq (Cairn gives neither)"
        return versions.add(batch, source)


def outside(column: pa.Array, name: str, entry: tuple[Any, Any] | None,
            stats: Any) -> str | None:
    """What is wrong with a batch's `_seq`, `_user` or key column `name`: a
    NULL, a value outside `entry` (the file's entry's bounds) or
    outside `stats` (its footer's statistics of the row group), or None."""
    if column.null_count:
        return f"holds NULL {name} values"
    if not len(column):
        return None
    found = pc.min_max(column)
    try:
        lo, hi = found["min"].as_py(), found["max"].as_py()
    except OverflowError:  # a write refuses them (values.py_values)
        return f"holds {name} values outside the years 1-9999, which no column stores"
    if entry is not None and (lo < entry[0] or hi > entry[1]):
        return f"holds {name} values {lo!r}..{hi!r}, outside its entry's {entry[0]!r}..{entry[1]!r}"
    said = (stats.min, stats.max) if stats is not None and stats.has_min_max else None
    if said is not None and all(type(v) is type(lo) for v in said) and (
            lo < said[0] or hi > said[1]):  # (a type Python reads otherwise is not compared)
        return (f"holds {name} values {lo!r}..{hi!r}, outside its own statistics' "
                f"{said[0]!r}..{said[1]!r}")
    return None
