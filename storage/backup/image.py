"""A namespace as a backup will describe it: its manifest entries and the local
files to store (made by storage/snapshot.py, stored by writer.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .schema import FileEntry, NamespaceRecord, TableEntry


@dataclass
class FileToStore:
    """One file of a snapshot: a pinned data file or an exported buffer.
    `entry` is its manifest entry; storing it sets `entry.oid` (and `sha256`)."""

    path: Path
    size: int
    sha256: str
    entry: FileEntry
    temporary: bool = False


@dataclass
class NamespaceImage:
    """One namespace of a snapshot, as its manifest will describe it."""

    namespace: str
    record: NamespaceRecord
    tables: list[TableEntry]
    files: list[FileToStore]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def live_rows(self) -> int:
        return sum(t.live_rows or 0 for t in self.tables)

    @property
    def max_seq(self) -> int:
        return max((t.max_seq for t in self.tables), default=0)
