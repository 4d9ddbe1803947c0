"""Per-file key filters: a Bloom filter of every primary key a Parquet file
holds (every version, soft-deleted ones too), so an INSERT's duplicate-key
check (storage/dml.py) can skip a file that certainly does not hold a new key,
even when the file's key range (storage/keys.py) covers it. Tables written by
several clients with their own key ranges (or random keys) make every file's
range cover every key still to come; the filters keep the check off the files.

A filter says "may hold" or "does not hold". A false "may hold" only sends
the key to the exact DuckDB check over that file; a false "does not hold"
would let a duplicate key in, so filters are only ever built here, in memory,
from the rows the flush writes or from the file's own key column (files that
arrive by RESTORE, archive replay, or are found at start). Nothing of a filter
is ever stored or read back (not in the catalog, a sidecar or a backup).

The filter is blocked: a key's 64-bit hash picks one 64-bit word (its high 28
bits) and HASHES bits in it (6 bits each from its low 36), so a probe reads
one word per file. Keys hash the same in Python (one INSERT's few keys) and in
numpy (a flush's or a file's whole key column, and large INSERTs): integer
columns (SMALLINT, INT, BIGINT) by their 64-bit two's complement, TEXT and
BYTES by a polynomial over their bytes; several key columns combine. Other key
types (DATE, TIMESTAMP, DECIMAL, BOOLEAN) get no filter: their files go to the
exact check when the range cannot rule them out, as before."""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from catalog import DataFile

from .types import Column

log = logging.getLogger("cairn.storage")

BITS_PER_KEY = 24  # ~0.1% false "may hold" per file (16: ~0.4%; docs/performance.md)
HASHES = 6  # bits set per key within its word
MIN_WORDS = 64  # 512 bytes at least
# A file of at most this many keys keeps their sorted hashes instead (8 bytes
# a key, no false hits to speak of): the usual flushed file (flush_rows 10,000).
EXACT_KEYS = 16_384  # 128 KiB a file at most
# All filters of a server together stay under this many bytes (3 bytes a key:
# ~22 million keys). A file past the budget gets no filter: the exact check
# reads it when its range cannot rule a key out, as without filters.
BUDGET_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 4096  # a file with a longer TEXT/BYTES key gets no filter
CHUNK_BYTES = 256 * 1024  # text hashed in pieces (~24 bytes of scratch per byte): in cache
NUMPY_FROM = 64  # an INSERT of more rows hashes its keys with numpy

_M = (1 << 64) - 1
_P = 0x100000001B3  # FNV's 64-bit prime: the polynomial's base
_C0, _C1, _C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_INT_TYPES = frozenset({"SMALLINT", "INT", "BIGINT"})
_BYTE_TYPES = frozenset({"TEXT", "BYTES"})


def kinds_of(columns: list[Column], primary_key: list[str]) -> list[str] | None:
    """Each key column's hashing ('int' or 'bytes'), or None: no filter."""
    by_name = {c["name"]: c for c in columns}
    out = []
    for k in primary_key:
        col = by_name.get(k)
        if col is None:
            return None
        if col["type"] in _INT_TYPES:
            out.append("int")
        elif col["type"] in _BYTE_TYPES:
            out.append("bytes")
        else:
            return None
    return out


# --- hashing: one key in Python ---------------------------------------------------


def _mix(z: int) -> int:
    """splitmix64's finaliser (wrapping 64-bit arithmetic)."""
    z = (z + _C0) & _M
    z = ((z ^ (z >> 30)) * _C1) & _M
    z = ((z ^ (z >> 27)) * _C2) & _M
    return z ^ (z >> 31)


def _poly(data: bytes) -> int:
    h, p = 0, 1
    for b in data:
        h = (h + b * p) & _M
        p = (p * _P) & _M
    return h ^ ((len(data) * _C2) & _M)


def _hash_one(value: Any, kind: str) -> int | None:
    if kind == "int":
        if type(value) is not int:
            return None
        return _mix(value & _M)
    if isinstance(value, str):
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:
            return None
    if type(value) is not bytes or len(value) > MAX_KEY_BYTES:
        return None
    return _mix(_poly(value))


def hash_values(cols: Sequence[Sequence[Any]], kinds: list[str]) -> list[int] | None:
    """The hashes of keys given as Python values (one list per key column), or
    None if one cannot be hashed (then no file can be ruled out by filter)."""
    out: list[int] = []
    if len(kinds) == 1:  # the usual key: one column
        kind = kinds[0]
        for value in cols[0]:
            h = _hash_one(value, kind)
            if h is None:
                return None
            out.append(h)
        return out
    for key in zip(*cols, strict=True):
        z = 0
        for i, (value, kind) in enumerate(zip(key, kinds, strict=True)):
            h = _hash_one(value, kind)
            if h is None:
                return None
            z = h if i == 0 else _mix((z * _C1 + h) & _M)
        out.append(z)
    return out


# --- hashing: a column with numpy ---------------------------------------------------


def _mix_np(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(_C0)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_C1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_C2)
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


_POWERS = np.ones(1, np.uint64)


def _powers(n: int) -> np.ndarray:
    """_P**i (mod 2**64) for i < n."""
    global _POWERS
    have = _POWERS
    if len(have) < n:
        powers, p = [], 1
        for _ in range(max(n, 2 * len(have))):  # once per process, up to MAX_KEY_BYTES
            powers.append(p)
            p = (p * _P) & _M
        _POWERS = have = np.array(powers, np.uint64)
    return have[:n]


def _hash_bytes_np(arr: pa.Array) -> np.ndarray | None:
    """_poly of each value of a string/binary array (no nulls), vectorised."""
    arr = arr.cast(pa.large_binary())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + n + 1]
    lengths = np.diff(offsets)
    if n and int(lengths.max()) > MAX_KEY_BYTES:
        return None
    data_buf = arr.buffers()[2]
    data = (np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size
            else np.zeros(0, np.uint8))
    out = np.zeros(n, np.uint64)
    powers = _powers(max(1, int(lengths.max()) if n else 1))
    start = 0
    while start < n:  # pieces of ~CHUNK_BYTES of text: bounded scratch memory
        end = int(np.searchsorted(offsets, offsets[start] + CHUNK_BYTES, side="right")) - 1
        end = min(n, max(end, start + 1))
        lo, hi = int(offsets[start]), int(offsets[end])
        lens = lengths[start:end]
        if hi > lo:
            piece = data[lo:hi].astype(np.uint64)
            starts = offsets[start:end] - lo
            pos = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lens)
            piece *= powers[pos]
            nonempty = lens > 0
            sums = np.add.reduceat(piece, starts[nonempty])
            out[start:end][nonempty] = sums
        start = end
    return _mix_np(out ^ (lengths.astype(np.uint64) * np.uint64(_C2)))


def _hash_column_np(col: pa.Array | pa.ChunkedArray, kind: str) -> np.ndarray | None:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if col.null_count:
        col = col.drop_null()  # a NULL key joins with nothing: no need to find it
    if kind == "int":
        ints = col.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return _mix_np(ints.view(np.uint64))
    return _hash_bytes_np(col)


def hash_arrays(arrays: Sequence[pa.Array | pa.ChunkedArray], kinds: list[str]) -> np.ndarray | None:
    """hash_values for key columns given as Arrow arrays (equal hashes for
    equal keys), or None if they cannot be hashed."""
    if len(arrays) > 1 and any(a.null_count for a in arrays):
        return None  # rows would misalign once each column drops its NULLs
    z: np.ndarray | None = None
    for i, (arr, kind) in enumerate(zip(arrays, kinds, strict=True)):
        h = _hash_column_np(arr, kind)
        if h is None:
            return None
        z = h if i == 0 else _mix_np(z * np.uint64(_C1) + h)  # type: ignore[operator]
    return z


# --- the filter -----------------------------------------------------------------------


def _masks_np(z: np.ndarray) -> np.ndarray:
    m = np.zeros_like(z)
    one, six3 = np.uint64(1), np.uint64(63)
    for j in range(HASHES):
        m |= one << ((z >> np.uint64(6 * j)) & six3)
    return m


def _mask(z: int) -> int:  # _masks_np for one hash, unrolled (HASHES = 6)
    return (1 << (z & 63) | 1 << (z >> 6 & 63) | 1 << (z >> 12 & 63)
            | 1 << (z >> 18 & 63) | 1 << (z >> 24 & 63) | 1 << (z >> 30 & 63))


class Probe:
    """An INSERT's keys, hashed once for every file's filter: the hashes, and
    (top 28 bits of the hash, bit mask) per key in Python, or arrays for many keys."""

    __slots__ = ("hashes", "high", "masks", "pairs")

    def __init__(self, hashes: list[int] | np.ndarray) -> None:
        self.hashes = hashes
        self.pairs: list[tuple[int, int]] | None = None
        self.high = self.masks = np.zeros(0, np.uint64)
        if isinstance(hashes, np.ndarray):
            self.high, self.masks = hashes >> np.uint64(36), _masks_np(hashes)
        else:
            self.pairs = [(z >> 36, _mask(z)) for z in hashes]


class KeyFilter:
    """One file's keys: for up to EXACT_KEYS keys their sorted 64-bit hashes
    (a false "may hold" only when two keys' hashes are equal: ~n / 2**64), for
    more a blocked Bloom filter (words of 64 bits, BITS_PER_KEY a key)."""

    __slots__ = ("_n", "_view", "exact", "words")

    def __init__(self, words: np.ndarray, exact: bool = False) -> None:
        self.words = words
        self.exact = exact
        self._n = len(words)
        self._view = memoryview(words.data).cast("B").cast("Q")  # fast Python indexing

    @staticmethod
    def build(hashes: np.ndarray) -> KeyFilter:
        if len(hashes) <= EXACT_KEYS:
            return KeyFilter(np.unique(hashes), exact=True)  # sorted
        n = max(MIN_WORDS, -(-len(hashes) * BITS_PER_KEY // 64))
        words = np.zeros(n, np.uint64)
        np.bitwise_or.at(words, (hashes >> np.uint64(36)) % np.uint64(n), _masks_np(hashes))
        return KeyFilter(words)

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes)

    def may_hold(self, probe: Probe) -> bool:
        """Could the file hold one of the probe's keys?"""
        n = self._n
        if self.exact:
            return self._has(probe)
        if probe.pairs is None:
            got = self.words[probe.high % np.uint64(n)]
            return bool(((got & probe.masks) == probe.masks).any())
        view = self._view
        for h, m in probe.pairs:  # noqa: SIM110 (a loop: faster than any() of a generator)
            if view[h % n] & m == m:
                return True
        return False

    def _has(self, probe: Probe) -> bool:
        n, hashes = self._n, probe.hashes
        if n == 0:
            return False  # no key (a key column of NULLs only, which match nothing)
        if isinstance(hashes, np.ndarray):
            at = np.minimum(np.searchsorted(self.words, hashes), n - 1)
            return bool((self.words[at] == hashes).any())
        view = self._view
        for z in hashes:
            i = bisect.bisect_left(view, z)
            if i < n and view[i] == z:
                return True
        return False


def probe_of(cols: list[list[Any]], rows: pa.Table, columns: list[Column],
             primary_key: list[str]) -> Probe | None:
    """An INSERT's keys (`cols`: one list per key column; the same in `rows`)
    hashed for the filters (None: no filter can help)."""
    kinds = kinds_of(columns, primary_key)
    if kinds is None or not cols or not cols[0]:
        return None
    if len(cols[0]) >= NUMPY_FROM:
        arrays = [rows.column(k) for k in primary_key]
        hashed: list[int] | np.ndarray | None = hash_arrays(arrays, kinds)
        if hashed is not None and len(hashed) != len(cols[0]):
            return None  # a NULL key left out: nothing to say
    else:
        hashed = hash_values(cols, kinds)
    return None if hashed is None else Probe(hashed)


def build_from_rows(rows: pa.Table, columns: list[Column], primary_key: list[str]) -> KeyFilter | None:
    """The filter of the key columns of `rows` (a file's rows), or None."""
    kinds = kinds_of(columns, primary_key)
    if kinds is None or any(k not in rows.column_names for k in primary_key):
        return None
    hashes = hash_arrays([rows.column(k) for k in primary_key], kinds)
    return None if hashes is None else KeyFilter.build(hashes)


# --- the filters of a server's files ----------------------------------------------------


@dataclass
class FilterStats:
    """What the duplicate-key check did with the files of its tables: files
    left to the exact check (read by DuckDB), and files ruled out by their
    key range or their filter."""

    checked: int = 0
    range_skipped: int = 0
    filter_skipped: int = 0
    built: int = 0  # filters made (at flush or from a file)
    unfiltered: int = 0  # files that got no filter (over budget, type, unreadable)


class FileFilters:
    """The key filters of the server's files, by file path (files never
    change, paths are never reused). `None` for a file: no filter (all its
    keys "may" be in it). Thread-safe."""

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self._lock = threading.Lock()
        self._filters: dict[str, KeyFilter | None] = {}
        self.budget = budget
        self.bytes = 0
        self.stats = FilterStats()

    def get(self, path: str) -> KeyFilter | None:
        with self._lock:
            return self._filters.get(path)

    def missing(self, files: Iterable[DataFile]) -> list[DataFile]:
        """The files not yet looked at (no filter, and not known to have none)."""
        with self._lock:
            return [f for f in files if f.path not in self._filters]

    def add(self, path: str, kf: KeyFilter | None) -> None:
        with self._lock:
            if path in self._filters:
                return
            if kf is not None and self.bytes + kf.nbytes > self.budget:
                kf = None
            if kf is None:
                self.stats.unfiltered += 1
            else:
                self.bytes += kf.nbytes
                self.stats.built += 1
            self._filters[path] = kf

    def keep(self, files: list[DataFile], cols: list[list[Any]], columns: list[Column],
             primary_key: list[str]) -> list[DataFile]:
        """Of `files`, those whose filter may hold one of the keys (`cols`: one
        list of Python values per key column), or that have no filter (none is
        built here: a point query only uses the filters that exist)."""
        kinds = kinds_of(columns, primary_key)
        hashed = hash_values(cols, kinds) if kinds is not None and files else None
        if hashed is None:
            return files
        probe = Probe(hashed)
        with self._lock:
            get = self._filters.get
            return [f for f in files if (kf := get(f.path)) is None or kf.may_hold(probe)]

    def learn(self, path: str, abs_path: Any, columns: list[Column], primary_key: list[str]) -> None:
        """Build a file's filter from its key column (file I/O: unlocked,
        never on the event loop)."""
        kf = None
        if self.bytes < self.budget:
            try:
                rows = pq.read_table(abs_path, columns=list(primary_key))
                kf = build_from_rows(rows, columns, primary_key)
            except Exception:  # unreadable or gone (a concurrent drop): no filter
                log.debug("no key filter for %s", path, exc_info=True)
        self.add(path, kf)

    def forget(self, paths: Iterable[str]) -> None:
        with self._lock:
            for p in paths:
                kf = self._filters.pop(p, None)
                if kf is not None:
                    self.bytes -= kf.nbytes

    def select(self, files: list[DataFile], probe: Probe | None, range_skipped: int) -> list[DataFile]:
        """Of `files` (those whose key range may hold a key), the ones whose
        filter may hold one too (or that have none): the exact check's files.
        Counts what the check skipped and kept."""
        with self._lock:
            if probe is None:
                out = files
            else:
                get = self._filters.get
                out = [f for f in files if (kf := get(f.path)) is None or kf.may_hold(probe)]
            s = self.stats
            s.checked += len(out)
            s.range_skipped += range_skipped
            s.filter_skipped += len(files) - len(out)
        return out
