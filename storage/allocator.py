"""Hand DuckDB's freed memory back to the operating system after a big query.

DuckDB allocates through its own jemalloc, which keeps the pages a query freed
for reuse. A scan of Parquet row groups with wide columns (an UPDATE or DELETE
finding its rows, a SELECT of a BYTES column) thus left the server's RSS
~100-500 MB higher for good. `purge()` asks that jemalloc to return every
unused page now (`arena.<all>.purge` through its exported `mallctl`); it costs
well under a millisecond when little is dirty. If the installed duckdb does
not export that call, `purge()` does nothing and says so once."""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import pyarrow as pa

log = logging.getLogger("cairn.storage")

_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL
_mallctl: Any = None
_tried = False


def _load() -> Any:
    global _mallctl, _tried
    if _tried:
        return _mallctl
    _tried = True
    try:
        import _duckdb  # the native module: its jemalloc is the one DuckDB uses

        fn = ctypes.CDLL(_duckdb.__file__).duckdb_je_mallctl
        fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_size_t]
        fn.restype = ctypes.c_int
        _mallctl = fn
    except (ImportError, OSError, AttributeError) as exc:
        log.info("DuckDB's allocator cannot be asked to return memory (%s)", exc)
    return _mallctl


def purge() -> bool:
    """Return DuckDB's (and pyarrow's pool's) unused pages to the OS; True if
    DuckDB's could be asked."""
    pa.default_memory_pool().release_unused()
    fn = _load()
    if fn is None:
        return False
    return int(fn(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, 0)) == 0
