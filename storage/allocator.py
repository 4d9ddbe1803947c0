"""Hand freed memory back to the operating system after a big query.

Three allocators keep the pages a query freed for reuse, so a scan of wide
Parquet row groups (an UPDATE or DELETE finding its rows, a SELECT of a BYTES
column) used to leave the server's RSS ~100-500 MB higher for good:

- DuckDB allocates through its own jemalloc: `purge()` asks it to return every
  unused page (`arena.<all>.purge` through its exported `mallctl`);
- pyarrow's pool (mimalloc or jemalloc): `release_unused()`;
- glibc's malloc, which RocksDB (memtables, flushes and compactions in its
  background threads) and Python's large objects use: `malloc_trim(0)` returns
  the free pages of every arena (a compaction at start-up alone left ~25 MB).

Each costs well under a millisecond when little is free. Where one is missing
(another duckdb, another libc), `purge()` skips it and says so once.

`malloc_trim` cannot return what glibc keeps on purpose: once a large mmapped
block is freed, glibc raises its mmap threshold to that block's size (up to
32 MiB) and its trim threshold to twice that, so blocks up to that size come
from the per-thread arenas afterwards, and an arena's free top below the trim
threshold stays resident (malloc_trim trims the main arena's top only). One
10 MB UPDATE so left ~20 MB for good, and the INSERT loops and backups of
bench_writer ~30 MB. `fix_malloc_thresholds()` pins both at glibc's own
starting value (128 KiB): large blocks stay mmapped and go back when freed."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

log = logging.getLogger("cairn.storage")

_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL
_mallctl: Any = None
_trim: Any = None
_tried = False
_counters = threading.local()  # .allocated: this thread's jemalloc counter (or None)

# A query on the single-threaded DuckDB that allocated at least this much on
# its thread is followed by `purge()` (a 5,000-branch UNION ALL of constants
# allocates ~360 MB and left it resident in the arena its thread uses).
PURGE_AFTER_BYTES = 16 << 20


def _load() -> Any:
    global _mallctl, _trim, _tried
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
    try:
        trim = _libc().malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
        _trim = trim
    except (OSError, AttributeError) as exc:  # not glibc
        log.info("malloc cannot be asked to return memory (%s)", exc)
    return _mallctl


@contextlib.contextmanager
def purged_after() -> Iterator[None]:
    """`purge()` when the block ends, however it ends: around a restore, the
    fetch's buffers and the install's reads (a 1 GiB RESTORE left the
    server's RSS 24 MB over its start, 12 MB with this)."""
    try:
        yield
    finally:
        purge()


def thread_allocated() -> int:
    """Bytes DuckDB's jemalloc has handed this thread so far (never falls; 0
    where it cannot be asked): jemalloc's own thread-local counter, read at
    its address (well under a microsecond; a `mallctl` a read took ~15 µs)."""
    counter: Any = getattr(_counters, "allocated", False)
    if counter is False:
        counter = _counters.allocated = _thread_counter()
    return 0 if counter is None else int(counter.value)


def _thread_counter() -> Any:
    fn = _load()
    if fn is None:
        return None
    ptr = ctypes.c_void_p(0)
    size = ctypes.c_size_t(ctypes.sizeof(ptr))
    if fn(b"thread.allocatedp", ctypes.byref(ptr), ctypes.byref(size), None, 0) != 0 or not ptr.value:
        return None
    return ctypes.c_uint64.from_address(ptr.value)


def purge() -> bool:
    """Return DuckDB's, pyarrow's pool's and malloc's unused pages to the OS;
    True if DuckDB's could be asked."""
    pa.default_memory_pool().release_unused()
    fn = _load()
    if _trim is not None:
        _trim(0)
    if fn is None:
        return False
    return int(fn(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, 0)) == 0


class PurgeAfter:
    """`purge()` on a thread of the event loop's executor once `threshold`
    bytes were let go (`let_go`), `delay` seconds later (the last references
    to what held them are gone by then), one purge at a time; not `enabled`,
    or off an event loop (a unit test), none. For memory the server let go of
    on the event loop: answers sent or dropped, portals' rows given back."""

    def __init__(self, threshold: int, delay: float = 0.0, enabled: bool = True) -> None:
        self.threshold, self.delay, self.enabled = threshold, delay, enabled
        self.freed = 0  # bytes let go of since the last purge
        self._pending = False

    def let_go(self, n: int) -> None:
        self.freed += n
        if not self.enabled or self.freed < self.threshold or self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: a later let_go purges
            return
        self._pending = True
        loop.call_later(self.delay, self._purge, loop)

    def _purge(self, loop: asyncio.AbstractEventLoop) -> None:
        self.freed = 0
        done = loop.run_in_executor(None, purge)  # not a statement thread
        done.add_done_callback(lambda _: setattr(self, "_pending", False))


M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MALLOC_THRESHOLD = 128 * 1024  # glibc's default for both, before it moves them


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, looked up once: `find_library` runs `ldconfig -p` (a
    process) each time, and every catalog open pins the thresholds."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def fix_malloc_thresholds() -> bool:
    """Pin glibc's mmap and trim thresholds (see the module docstring); True
    if glibc took them (False on another libc)."""
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD))
