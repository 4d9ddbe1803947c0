"""A namespace as a backup will describe it: its manifest entries and the local
files to store (made by storage/snapshot.py, stored by writer.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .schema import FileEntry, NamespaceRecord, TableEntry


@dataclass
class FileToStore:
    """One file of a snapshot: a pinned data file or an exported buffer.
    `entry` is its manifest entry; storing it sets `entry.oid` (and `sha256`).
    `data`: its bytes, when it is stored from memory (a small export: then
    `path` is written only if something must read it there)."""

    path: Path
    size: int
    sha256: str
    entry: FileEntry
    temporary: bool = False
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass
class NamespaceImage:
    """One namespace of a snapshot, as its manifest will describe it.

    The tables' live rows are counted by `count_live_rows` (reading the files),
    not when the snapshot is taken: a backup counts them while its files move
    (writer.py), as only its manifest needs them."""

    namespace: str
    record: NamespaceRecord
    tables: list[TableEntry]
    files: list[FileToStore]
    # Each sets one table entry's `live_rows`; run (once) by count_live_rows.
    counts: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    # Each writes one table's buffered rows as files and adds them (to
    # `files`, its entry, its count); run (once) by export_buffers.
    exports: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                      compare=False)

    def __getstate__(self) -> dict[str, object]:
        # Picklable for a job process (storage/jobproc.py): not the lock.
        return {k: v for k, v in self.__dict__.items() if k != "_counting"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state, _counting=threading.Lock())

    def export_buffers(self) -> None:
        """Write the buffered rows a snapshot left to export (storage/snapshot.py
        `BufferExport`): a BACKUP's job process does, before reading `files`
        or the tables. Safe to call again."""
        while self.exports:
            self.exports[0]()
            self.exports.pop(0)

    def count_live_rows(self) -> None:
        """Fill every table entry's `live_rows` (while the snapshot still pins
        the files). Safe to call again, and from another thread."""
        with self._counting:
            while self.counts:
                self.counts[0]()
                self.counts.pop(0)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def live_rows(self) -> int:
        self.count_live_rows()
        return sum(t.live_rows or 0 for t in self.tables)

    @property
    def max_seq(self) -> int:
        return max((t.max_seq for t in self.tables), default=0)
