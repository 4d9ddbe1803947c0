"""Point lookups of flushed rows without DuckDB: recent Parquet files, whole,
as Arrow tables.

A point SELECT whose key is in the write buffer is answered off the snapshot
(storage/direct.py). Once a flush has moved the row into a Parquet file, the
same SELECT went to DuckDB, which plans, opens the file and decodes a row
group for it: a few ms of CPU on a busy server, against ~0.1 ms off the
buffer, so a 16-client INSERT/SELECT load fell from ~1,000 to ~550 req/s at
its first flush (docs/performance.md, "Point SELECTs of flushed rows").
Reading the row with pyarrow costs as much (the file's row group is decoded
whole: ~3 ms for 10,000 rows), so the files themselves are kept: the first
lookup in a file reads it into this cache (on a statement thread), and the
next ones find the key with one Arrow compare over its key column.

Files are immutable and their paths are never reused, so an entry is never
stale; a file that is gone (compacted, dropped) is simply not asked for again
and ages out. The cache holds at most `budget` bytes of Arrow memory (least
recently used first out), and no file larger than a quarter of it; 0 turns
it off (`[storage] point_cache_mb`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .query_errors import check_data_file, unreadable

_Index = tuple[np.ndarray, np.ndarray]  # the key column sorted, and each one's row


class PointCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = max(0, int(budget_bytes))
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, pa.Table] = OrderedDict()
        self._index: dict[str, dict[str, _Index]] = {}  # path -> key column -> index
        self._bytes = 0
        self._too_big: set[str] = set()  # files never to read again
        self.hits = 0
        self.loads = 0

    def get(self, path: str) -> pa.Table | None:
        """The file's table if it is held (and now the most recently used)."""
        with self._lock:
            table = self._tables.get(path)
            if table is not None:
                self._tables.move_to_end(path)
                self.hits += 1
            return table

    def wanted(self, path: str, size: int) -> bool:
        """Whether a file of `size` stored bytes may be read in at all."""
        return bool(self.budget) and size <= self.budget // 4 and path not in self._too_big

    def load(self, path: str, abs_path: Path) -> pa.Table | None:
        """Read the file whole and keep it (blocking I/O: not on the event
        loop). None if it is too large decoded (its footer says so before
        anything else is read; the table's own size, after)."""
        check_data_file(abs_path)  # not a FIFO (its open waits for ever)
        try:
            with pq.ParquetFile(abs_path, memory_map=False) as f:
                meta = f.metadata
                decoded = sum(meta.row_group(i).total_byte_size
                              for i in range(meta.num_row_groups))
                table = None if decoded > self.budget // 4 else f.read()
        except (pa.ArrowException, OSError) as exc:  # truncated, zeroed: as a scan's
            raise unreadable(abs_path, exc) from None
        size = table.nbytes if table is not None else decoded
        with self._lock:
            if table is None or size > self.budget // 4:
                self._too_big.add(path)
                return None
            if path not in self._tables:
                self._tables[path] = table
                self._bytes += size
                self.loads += 1
            self._evict()
            return table

    def _evict(self) -> None:  # under the lock
        while self._bytes > self.budget and self._tables:
            path, old = self._tables.popitem(last=False)
            self._bytes -= old.nbytes
            for keys, order in self._index.pop(path, {}).values():
                self._bytes -= keys.nbytes + order.nbytes

    def rows(self, path: str, table: pa.Table, key: str, value: object) -> list[int] | None:
        """The rows of `table` (the cached file `path`) whose `key` is
        `value`, in file order; None if `value` does not read as the column's
        type. An integer key column with no NULL is searched in a sorted copy
        of it (made at the first lookup, kept and counted with the table: 16
        bytes a row), any other with one Arrow compare over the column."""
        column = table.column(key)
        if (isinstance(value, int) and not isinstance(value, bool)
                and pa.types.is_integer(column.type) and column.null_count == 0):
            found = self._index.get(path, {}).get(key)
            if found is None:
                keys = column.to_numpy()
                order = np.argsort(keys, kind="stable")
                found = (keys[order], order)
                with self._lock:
                    # still held (the index goes with it), and counted once
                    if path in self._tables and key not in self._index.get(path, {}):
                        self._index.setdefault(path, {})[key] = found
                        self._bytes += found[0].nbytes + found[1].nbytes
                        self._evict()
            sorted_keys, order = found
            limits = np.iinfo(sorted_keys.dtype)
            if not limits.min <= value <= limits.max:
                return None
            lo = int(np.searchsorted(sorted_keys, value, side="left"))
            hi = int(np.searchsorted(sorted_keys, value, side="right"))
            return sorted(int(i) for i in order[lo:hi])
        try:
            wanted = pa.scalar(value, column.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
        hits = pc.indices_nonzero(pc.fill_null(pc.equal(column, wanted), False))
        return [int(i) for i in hits.to_pylist()]

    @property
    def held_bytes(self) -> int:
        return self._bytes
