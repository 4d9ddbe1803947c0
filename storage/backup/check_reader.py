"""The Parquet reader a backed-up file's values are checked with (contents.py).

Reading a 16 MB row group of a BYTES column of 1,000-byte values plain, in
small batches, the reader reserves the rest of its data page for every batch:
~230 MB allocated and freed for 16 MB read (pyarrow 26), ~1,300 blocks of up
to a page. No more than ~7 MB is live at once, but pyarrow's default pool
(mimalloc) holds freed pages for a while before it returns them: a RESTORE's
peak RSS rose +28-35 MB during the check of each file. So the arrays the
check reads come from a pool of their own, jemalloc's where pyarrow has it,
which reuses the freed blocks (+7 MB, as fast), and it hands its free pages
back when the file is checked (`release`)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow._parquet import ParquetReader

# Extension types as pq.ParquetFile reads them (its default, where it has the option).
_EXTENSIONS = ({"arrow_extensions_enabled": True}
               if "arrow_extensions_enabled" in inspect.signature(pq.ParquetFile).parameters
               else {})


def pool() -> pa.MemoryPool:
    """jemalloc's pool where this pyarrow has one, else the default."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def release() -> None:
    """Free pages of the check's pool (and the default's: the pages' buffers) go back."""
    pool().release_unused()
    pa.default_memory_pool().release_unused()


class CheckReader:
    """What contents.values_problem uses of `pq.ParquetFile`, over `pool()`."""

    def __init__(self, source: str | IO[bytes], read_dictionary: list[str],
                 buffer_size: int, metadata: Any = None) -> None:
        # A file object stays open for its owner (VERIFY's Capture), as pq.ParquetFile leaves it.
        self._close = isinstance(source, str)
        self._reader = ParquetReader(memory_pool=pool())
        self._reader.open(source, read_dictionary=read_dictionary, buffer_size=buffer_size,
                          pre_buffer=False, metadata=metadata, **_EXTENSIONS)
        # A column's leaves, as pq.ParquetFile finds them (a list's are under its name).
        self._leaves: dict[str, list[int]] = {}
        for i, path in enumerate(self._reader.column_paths):
            for n in range(1, len(path) + 1):
                self._leaves.setdefault(".".join(path[:n]), []).append(i)

    @property
    def metadata(self) -> Any:
        return self._reader.metadata

    @property
    def schema_arrow(self) -> pa.Schema:
        return self._reader.schema_arrow

    def iter_batches(self, batch_size: int, row_groups: list[int],
                     columns: list[str]) -> Iterator[pa.RecordBatch]:
        indices = [i for c in columns for i in self._leaves.get(c, [])]
        return iter(self._reader.iter_batches(batch_size, row_groups, column_indices=indices,
                                              use_threads=False))

    def __enter__(self) -> CheckReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._close:
            self._reader.close()
