"""A namespace's tables as of one instant, for BACKUP: what to copy and how."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from catalog import DataFile, Table, TableSchema


@dataclass
class TableSnapshot:
    table: Table
    schemas: list[TableSchema]  # every version, oldest first
    files: list[DataFile]  # pinned until the snapshot is released
    buffer: pa.Table | None  # buffered rows, storage schema (with _seq/_user); None for STREAM


@dataclass
class NamespaceSnapshot:
    namespace: str
    tables: list[TableSnapshot]
    pin_token: str
    # The cut of the namespace's change log the snapshot is exact to (see
    # storage/archive/changes.py): every change with lsn <= cut_lsn, committed
    # at or before cut_us (a whole millisecond), and no other.
    cut_lsn: int = 0
    cut_us: int = 0
