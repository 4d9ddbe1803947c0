"""Primary-key bookkeeping that lets an INSERT prove "this key is new" without
DuckDB in the common cases.

Two facts, each only ever an over-approximation of what a table holds:

- the keys of every buffered row version (`TableState` keeps them as a set,
  per user for USER tables): a key not in it has no version in the buffer;
- the key range of every Parquet file (`DataFile.key_range`, computed when the
  file is written; for files without it, such as restored ones, the integer
  columns' Parquet footer statistics): a key outside a file's range has no
  version in that file.

A key that passes both has no version at all, live or soft-deleted, so the
INSERT needs no check. Anything the facts cannot rule out (a key in the set,
a file whose range could hold it, a column type they do not cover) goes to the
exact DuckDB check, over only the files that could hold a key."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog import DataFile
from catalog.errors import InvalidArgument

from .batch import BatchMap, BufBatch, OneRow
from .keyfilter import FileFilters, Probe
from .sql_text import sql_text
from .types import DELETED, ID, SEQ, Column

log = logging.getLogger("cairn.storage")

# Types whose Python values (from Arrow's to_pylist) compare and hash exactly as
# DuckDB compares them in the key join. REAL/DOUBLE are left out: NaN and -0.0
# compare differently in Python than in DuckDB.
SET_TYPES = frozenset({"BOOLEAN", "SMALLINT", "INT", "BIGINT", "DECIMAL", "TEXT", "BYTES",
                       "DATE", "TIMESTAMP"})
# Types whose file ranges are recorded: values that survive JSON as themselves
# and order in Python as in Parquet/DuckDB (integers; strings by code point,
# which is UTF-8 byte order).
RANGE_TYPES = frozenset({"SMALLINT", "INT", "BIGINT", "TEXT"})
FOOTER_TYPES = frozenset({"SMALLINT", "INT", "BIGINT"})  # Parquet statistics trusted as exact
MAX_RANGE_TEXT = 256  # longer TEXT bounds are not recorded (the column is then unbounded)
KEYSET_LIMIT = 200_000  # buffered key versions tracked per table; past it: DuckDB checks
REBUILD_SLACK = 256  # stale references a stale index may hold beyond twice the buffered rows
PER_KEY_PROBE = 32  # INSERTs with at most this many rows test each key against a file range


def pk_columns(columns: list[Column], primary_key: list[str]) -> list[Column] | None:
    by_name = {c["name"]: c for c in columns}
    cols = [by_name.get(k) for k in primary_key]
    return None if any(c is None for c in cols) else cols  # type: ignore[return-value]


def settable(columns: list[Column], primary_key: list[str]) -> bool:
    """Can this table's keys be tracked in a Python set? Not the generated
    `_id` key: INSERTs never check it, so its set is not kept."""
    if primary_key == [ID]:
        return False
    cols = pk_columns(columns, primary_key)
    return cols is not None and all(c["type"] in SET_TYPES for c in cols)


def probe_keys(cols: list[list[Any]], user: str | None, user_table: bool) -> list[Any]:
    """Keys as the buffer key set holds them: the bare value for a one-column
    key, else a tuple; USER tables prefix the owner."""
    if user_table:
        return [(user, *k) for k in zip(*cols, strict=False)]
    if len(cols) == 1:
        return cols[0]
    return list(zip(*cols, strict=False))


def batch_keys(batch: BufBatch, primary_key: list[str], user_table: bool) -> list[Any]:
    if isinstance(batch, OneRow):  # the values, where they are what Arrow gives back
        plain = [batch.plain_value(k) for k in primary_key]
        if all(ok for ok, _ in plain):
            return probe_keys([[v] for _, v in plain], batch.user, user_table)
    return probe_keys([batch.rows.column(k).to_pylist() for k in primary_key],
                      batch.user, user_table)


class BufferKeys:
    """The keys of a table's buffered row versions, each with the buffer keys
    of the batches that hold a version of it (so a point lookup reads only
    those batches, query.py). Call every method with the table's `lock` held.

    `stale` means batches were removed since the index was built (a flush, an
    eviction): it is then a superset (keys and batches that may be gone, which
    every reader of its answer skips), rebuilt when `removed` finds it holding
    more than twice what the buffer does. (It was also rebuilt whenever a probe
    hit it: on a full stream, an INSERT of a buffered key after each eviction
    rebuilt the whole index, O(max_buffer) a statement under the table's lock.) `keys is None` means
    unknown (too many, or not built yet). `size` counts the references added
    since the last build: at least the entries and their lists' items."""

    __slots__ = ("keys", "size", "stale")

    def __init__(self) -> None:
        # key -> the buffer key of the one batch holding it, or a list of them
        # (oldest first) when several do: a single bytes object is shared with
        # the batch map, so the common case costs one dict entry.
        self.keys: dict[Any, bytes | list[bytes]] | None = None
        self.size = 0
        self.stale = True  # not built yet

    def add(self, keys: list[Any], batch: bytes) -> None:
        """`keys` have a version in the batch stored under `batch`."""
        index = self.keys
        if index is None:
            return
        for k in keys:
            had = index.get(k)
            if had is None:
                index[k] = batch
            elif isinstance(had, list):
                if had[-1] != batch:
                    had.append(batch)
            elif had != batch:
                index[k] = [had, batch]
        self.size += len(keys)
        if len(index) > KEYSET_LIMIT:
            self.keys = None  # retried once a flush empties the buffer

    def removed(self, batches: BatchMap, primary_key: list[str], user_table: bool) -> None:
        """Batches left the buffer (`batches`: what it holds now). Keys that
        are never looked up again (a stream of always-new keys) would keep
        their entries for good, so the index is rebuilt here once it holds
        more than twice the buffered rows: a rebuild reads fewer rows than the
        references it drops, each added once (O(1) a row amortised), and the
        index's memory follows the buffer's. A flushed key is found through
        the files' ranges and filters, not here."""
        self.stale = True
        if self.keys is not None and self.size > 2 * batches.rows + REBUILD_SLACK:
            self._rebuild(batches, primary_key, user_table)

    def may_hold(
        self, probe: list[Any], batches: BatchMap, primary_key: list[str], user_table: bool
    ) -> bool:
        if self.stale and self.keys is None:  # unknown: built (or found too many) now
            if batches.rows > KEYSET_LIMIT:  # still too many, told in O(1): no recount
                return True
            self._rebuild(batches, primary_key, user_table)
        if self.keys is None:
            return True
        keys = self.keys
        return any(k in keys for k in probe)

    def batches_of(
        self, probe: list[Any], batches: BatchMap, primary_key: list[str], user_table: bool
    ) -> list[bytes] | None:
        """The buffer keys of every batch that may hold a version of a `probe`
        key, in commit order (a superset: some may be gone), or None if unknown."""
        if not self.may_hold(probe, batches, primary_key, user_table):
            return []
        index = self.keys
        if index is None:
            return None
        found: set[bytes] = set()
        for k in probe:
            had = index.get(k)
            if isinstance(had, list):
                found.update(had)
            elif had is not None:
                found.add(had)
        return sorted(found)  # big-endian first sequence numbers: commit order

    def _rebuild(self, batches: BatchMap, primary_key: list[str], user_table: bool) -> None:
        self.stale = False
        if batches.rows > KEYSET_LIMIT:
            self.keys = None
            return
        self.keys, self.size = {}, 0
        for b in list(batches.values()):
            self.add(batch_keys(b, primary_key, user_table), b.key)


def buffered_versions(
    index: BufferKeys, batches: BatchMap, primary_key: list[str], probe: list[Any],
    wanted: dict[tuple[Any, ...], int], *, owner: str | None, user_table: bool,
    has_deleted: bool, min_ts: float | None, append_only: bool,
) -> dict[tuple[Any, ...], bool] | None:
    """For an INSERT's exact key check (storage/dml.py): the `_deleted` flag
    of the newest buffered version of each `wanted` key (a tuple of its pk
    values) that has one, read from the batches the index names for `probe`:
    the rows DuckDB's check would read when no file could hold a key (this
    user's, not expired). None when the index cannot say, a batch lacks a
    column it needs, or the answer could differ from DuckDB's (an append-only
    table with two versions of a key; two live keys, of which DuckDB picks the
    one it reports). Call with the table's lock held."""
    found = index.batches_of(probe, batches, primary_key, user_table)
    if found is None:
        return None
    newest: dict[tuple[Any, ...], tuple[int, bool]] = {}
    for b in (batches.get(k) for k in found):
        if b is None or (user_table and b.user != owner) or (min_ts is not None and b.ts < min_ts):
            continue
        rows = b.rows
        names = rows.column_names
        if any(k not in names for k in primary_key) or (has_deleted and DELETED not in names):
            return None
        seqs = rows.column(SEQ).to_pylist()
        flags = rows.column(DELETED).to_pylist() if has_deleted else None
        for i, key in enumerate(zip(*[rows.column(k).to_pylist() for k in primary_key],
                                    strict=False)):
            if key not in wanted:
                continue
            old = newest.get(key)
            if old is not None and append_only:
                return None
            if old is None or seqs[i] > old[0]:
                newest[key] = (seqs[i], bool(flags[i]) if flags is not None else False)
    if sum(1 for _, deleted in newest.values() if not deleted) > 1:
        return None
    return {k: deleted for k, (_, deleted) in newest.items()}


# --- file key ranges ------------------------------------------------------------


def key_range(rows: pa.Table, columns: list[Column], primary_key: list[str]) -> dict[str, list[Any]]:
    """{pk column: [min, max]} of the rows, for the columns whose bounds can be
    recorded exactly (a column left out is unbounded)."""
    out: dict[str, list[Any]] = {}
    cols = pk_columns(columns, primary_key) or []
    for col in cols:
        if col["type"] not in RANGE_TYPES or col["name"] not in rows.column_names:
            continue
        mm = pc.min_max(rows.column(col["name"]))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if lo is None or hi is None:
            continue
        if isinstance(lo, str) and (len(lo) > MAX_RANGE_TEXT or len(hi) > MAX_RANGE_TEXT):
            continue
        out[col["name"]] = [lo, hi]
    return out


class FileRanges:
    """Key ranges of files whose DataFile does not carry one, from the Parquet
    footer's integer statistics (read once per file: files never change);
    and every file's key filter (storage/keyfilter.py)."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, list[Any]] | None] = {}
        self._lock = threading.Lock()
        self.filters = FileFilters()

    def get(self, f: DataFile) -> dict[str, list[Any]] | None:
        if f.key_range:
            return f.key_range
        with self._lock:
            return self._known.get(f.path)

    def missing(self, files: Iterable[DataFile]) -> list[DataFile]:
        with self._lock:
            return [f for f in files if not f.key_range and f.path not in self._known]

    def in_range(
        self, files: list[DataFile], primary_key: list[str], cols: list[list[Any]],
        bounds: list[tuple[Any, Any] | None], probe: Probe | None,
    ) -> tuple[list[DataFile], list[DataFile]]:
        """Of `files` (every range known), those whose key range may hold one
        of the keys, and those of them whose filter is yet to be built (none
        if `probe` is None: the keys cannot be filtered)."""
        if len(primary_key) == 1 and len(cols[0]) == 1 and bounds[0] is not None:
            out = self._one_key(files, primary_key[0], cols[0][0])
        else:
            out = [f for f in files if file_may_hold(self.get(f), primary_key, cols, bounds)]
        return out, (self.filters.missing(out) if probe is not None else [])

    def _one_key(self, files: list[DataFile], name: str, value: Any) -> list[DataFile]:
        """file_may_hold for one key of one column, inline (a file at a time
        it was most of an INSERT's check once files are many)."""
        out = []
        for f in files:
            r = (f.key_range or self.get(f) or {}).get(name)
            try:
                if r is None or r[0] <= value <= r[1]:
                    out.append(f)
            except TypeError:  # not comparable: no bound
                out.append(f)
        return out

    def learn(self, f: DataFile, path: Any, columns: list[Column], primary_key: list[str]) -> None:
        try:
            found = footer_range(path, columns, primary_key)
        except Exception:  # unreadable or gone (a concurrent drop): unbounded
            log.debug("no key statistics for %s", f.path, exc_info=True)
            found = None
        with self._lock:
            self._known[f.path] = found

    def forget(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        with self._lock:
            for p in paths:
                self._known.pop(p, None)
        self.filters.forget(paths)


def footer_range(path: Any, columns: list[Column], primary_key: list[str]) -> dict[str, list[Any]] | None:
    meta = pq.read_metadata(path)
    cols = [c for c in pk_columns(columns, primary_key) or [] if c["type"] in FOOTER_TYPES]
    if not cols:
        return None
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    out: dict[str, list[Any]] = {}
    for col in cols:
        i = index.get(col["name"])
        if i is None:
            continue
        lo = hi = None
        ok = True
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            if rg.num_rows == 0:
                continue
            stats = rg.column(i).statistics
            if stats is None or not stats.has_min_max:
                ok = False
                break
            if not isinstance(stats.min, int) or not isinstance(stats.max, int):
                ok = False
                break
            lo = stats.min if lo is None else min(lo, stats.min)
            hi = stats.max if hi is None else max(hi, stats.max)
        if ok and lo is not None:
            out[col["name"]] = [lo, hi]
    return out or None


def file_may_hold(
    rng: dict[str, list[Any]] | None,
    primary_key: list[str],
    cols: list[list[Any]],
    bounds: list[tuple[Any, Any] | None],
) -> bool:
    """Could a file with key range `rng` hold one of the keys (`cols`: one list
    per pk column; `bounds`: each column's (min, max) over the keys)?"""
    if not rng:
        return True
    checks = []
    for i, k in enumerate(primary_key):
        r = rng.get(k)
        if r is None or bounds[i] is None:
            continue
        lo, hi = r
        klo, khi = bounds[i]  # type: ignore[misc]
        try:
            if khi < lo or klo > hi:
                return False  # every key is outside on this column
        except TypeError:
            continue
        checks.append((i, lo, hi))
    if not checks:
        return True
    if len(cols[0]) > PER_KEY_PROBE:
        return True  # the keys' bounding box meets the range: let DuckDB look
    try:
        return any(
            all(lo <= cols[i][j] <= hi for i, lo, hi in checks) for j in range(len(cols[0]))
        )
    except TypeError:
        return True


def bounds_of(cols: list[list[Any]], columns: list[Column], primary_key: list[str]) -> list[tuple[Any, Any] | None]:
    """Each pk column's (min, max) over the new keys, for the range types only."""
    pcs = pk_columns(columns, primary_key) or []
    out: list[tuple[Any, Any] | None] = []
    for i, values in enumerate(cols):
        if i < len(pcs) and pcs[i]["type"] in RANGE_TYPES and values:
            try:
                out.append((min(values), max(values)))
            except TypeError:
                out.append(None)
        else:
            out.append(None)
    return out


def refuse_nan(pk: list[str], cols: list[list[Any]]) -> None:
    """InvalidArgument if a key value is NaN: NaN equals no value, itself
    included, so two rows of key NaN could never be told apart (nor found)."""
    for name, values in zip(pk, cols, strict=True):
        if any(isinstance(v, float) and v != v for v in values):
            raise InvalidArgument(f"Column '{name}' is part of the primary key and cannot be NaN")


def refuse_null(pk: list[str], rows: pa.Table | pa.RecordBatch) -> None:
    """InvalidArgument if a row's key holds NULL: such a row is no row of the
    table (no later statement finds it by key, and a backup holding it does
    not verify). An INSERT's values are checked as they are coerced; this is
    the write path's last word for new versions of rows found (UPDATE, DELETE)."""
    for name in pk:
        nulls = rows.column(name).null_count
        if nulls:
            raise InvalidArgument(f"Column '{name}' is part of the primary key and would be "
                                  f"NULL in {nulls} row(s): nothing was written")


def without_null_keys(pk: list[str], rows: pa.Table) -> tuple[pa.Table, int]:
    """`rows` without those whose key holds NULL, and how many those were.
    Such rows are no rows of the table (an older Cairn's UPDATE ... JOIN
    wrote some: docs/sql.md): no new version can replace them (a NULL key
    equals none), so UPDATE and DELETE pass them by, and a flush drops them."""
    if not any(rows.column(k).null_count for k in pk if k in rows.column_names):
        return rows, 0
    keep = pc.and_kleene(*[pc.is_valid(rows.column(k)) for k in pk]) if len(pk) > 1 \
        else pc.is_valid(rows.column(pk[0]))
    kept = rows.filter(keep)
    return kept, rows.num_rows - kept.num_rows


def reachable(pk: list[str], found: pa.Table, table: str, verb: str) -> pa.Table:
    """The rows an UPDATE or DELETE found (`verb`: "updated", "deleted"),
    without those whose key is NULL. If they were all it found, nothing
    would be written: INVALID_ARGUMENT saying how to be rid of them."""
    kept, skipped = without_null_keys(pk, found)
    if skipped and not kept.num_rows:
        raise InvalidArgument(
            f"{skipped} row(s) of {table} have a NULL primary key ({', '.join(pk)}), left by an "
            f"older Cairn: they are no rows of the table and cannot be {verb}. FLUSH TABLE "
            f"{table} drops those still in the write buffer; rows already in the table's files "
            "stay until it is copied into a new table (CREATE TABLE, then INSERT INTO ... "
            f"SELECT ... WHERE {' AND '.join(k + ' IS NOT NULL' for k in pk)}): docs/sql.md")
    return kept


def shown_key(pk: list[str], key: tuple[Any, ...]) -> str:
    """`(a, b)=(1, 'x')`: a key as SQL text for a message (it was Python's
    repr: `Decimal('1.50')`, `datetime.date(2024, 1, 1)`)."""
    return f"({', '.join(pk)})=({', '.join(sql_text(v) for v in key)})"
