"""A table's write buffer: its key range of the RocksDB family `buffers`
(storage/bufstore.py).

Each write statement stores ONE entry: key = the table's prefix and the first
sequence number of its rows (8 bytes, big-endian, so keys sort by age), value = an Arrow IPC stream of
the statement's rows. The schema metadata says the schema version the rows were
written under, when, and for USER tables by whom. One put per statement keeps
bulk INSERTs cheap and makes each statement atomic; a flush deletes exactly the
entries it wrote to Parquet, in the same WriteBatch that registers the file.

The engine keeps a decoded mirror of every buffer in memory (`TableState`), so
queries never decode RocksDB values; the family is the durable copy."""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from catalog import DataFile, Table, TableSchema
from catalog.errors import Internal

from . import bufclock, bufstore
from .batch import BatchMap, BufBatch, OneRow, one_row_tables
from .keys import BufferKeys
from .replaced import Replaced
from .timing import TimedLock, bounded
from .types import HIDDEN, OW, SEQ, USER, Column, arrow_field, arrow_type, default_value

APPEND_ONLY = "append_only:"  # Meta record: the table has never had a key overwritten


def seq_key(seq: int) -> bytes:
    return struct.pack(">Q", seq)


KEEP_CONVERSION_BYTES = 8 << 20  # the largest buffer conversion a snapshot leaves cached
LARGE_VALUE = 1 << 20  # rows (Arrow bytes) from which encode writes straight into its result
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # an IPC stream's end: continuation, length 0


def encode(rows: pa.Table, version: int, ts: float, user: str | None, *,
           plain: bool = False, large: bool | None = None) -> bytes:
    """The rows as the buffer stores them: an Arrow IPC stream, with the schema
    version, time and user in the schema's metadata. `plain`: the caller knows
    no column is dictionary-encoded (rows made with `TableState.row_schema`);
    `large`: whether `rows.nbytes >= LARGE_VALUE`, if the caller knows (a
    table's `nbytes` takes ~30 µs).

    Rows of LARGE_VALUE bytes or more (an UPDATE or DELETE of many rows) are
    written into a BytesIO, whose buffer grows by an eighth and becomes the
    returned bytes without a copy (an Arrow sink doubles its buffer, and its
    bytes are copied out: 22 MB more at the peak of a 10 MB statement), in
    record batches of about a MiB (each is copied once on its way in)."""
    meta = {b"cairn.v": str(version).encode(), b"cairn.ts": repr(ts).encode()}
    if user is not None:
        meta[b"cairn.user"] = user.encode()
    if large if large is not None else rows.nbytes >= LARGE_VALUE:
        rows = rows.replace_schema_metadata(meta)
        out = io.BytesIO()
        per_batch = max(1, rows.num_rows * LARGE_VALUE // rows.nbytes)
        with pa.ipc.new_stream(pa.PythonFile(out, mode="w"), rows.schema) as writer:
            writer.write_table(rows, max_chunksize=per_batch)
        return out.getvalue()
    if not plain and any(_has_dictionary(f.type) for f in rows.schema):
        # Dictionary batches come before the record batches: Arrow's writer.
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema.with_metadata(meta)) as writer:
            writer.write_table(rows)
        data: bytes = sink.getvalue().to_pybytes()
        return data
    # The stream's messages, as `pa.ipc.new_stream` writes them (the same
    # bytes; tests/storage/test_insert_check.py), without its writer object
    # and option lookups (~10 µs of a single-row INSERT's ~0.7 ms). Only for
    # types without dictionaries (above).
    parts = [rows.schema.with_metadata(meta).serialize().to_pybytes()]
    parts += [b.serialize().to_pybytes() for b in rows.to_batches()]
    parts.append(_EOS)
    return b"".join(parts)


def _has_dictionary(t: pa.DataType) -> bool:
    """Whether `t` or any type nested in it is dictionary-encoded."""
    if pa.types.is_dictionary(t):
        return True
    return any(_has_dictionary(t.field(i).type) for i in range(t.num_fields))


def point_mask(rows: pa.Table, point: dict[str, Any]) -> Any:
    """The rows' mask of `point` ({column: value}, every one equal). Raises
    Arrow's errors (or KeyError) when a value does not compare with its column."""
    mask = None
    for name, value in point.items():
        eq = pc.equal(rows.column(name), value)
        mask = eq if mask is None else pc.and_(mask, eq)
    return mask


class DamagedBuffer(Internal, ValueError):
    """A table's write-buffer record that does not decode (cut short, bit rot):
    the data directory is damaged (storage/registry.py names the table). A
    ValueError too, as what it replaces was to the callers that read change
    log entries (the archiver fails its cycle on one)."""


def decode(key: bytes, value: bytes) -> BufBatch:
    try:
        rows = pa.ipc.open_stream(value).read_all()
        meta = rows.schema.metadata or {}
        user = meta.get(b"cairn.user")
        return BufBatch(
            key=key,
            version=int(meta[b"cairn.v"]),
            ts=float(meta[b"cairn.ts"]),
            user=user.decode() if user is not None else None,
            rows=rows.replace_schema_metadata(None),
        )
    except (pa.ArrowException, KeyError, ValueError) as exc:  # UnicodeError is a ValueError
        raise DamagedBuffer(f"a write-buffer record does not decode: {exc}") from None


def storage_schema(table: Table, columns: list[Column]) -> pa.Schema:
    """The Arrow schema rows are stored with: hidden columns, then every column."""
    fields = [pa.field(SEQ, pa.int64(), nullable=False), pa.field(OW, pa.bool_())]
    if table.table_type == "user":
        fields.append(pa.field(USER, pa.string(), nullable=False))
    fields += [arrow_field(c) for c in columns]
    return pa.schema(fields)


def conform(rows: pa.Table, version: int, table: Table, columns: list[Column]) -> pa.Table:
    """Rows written under schema `version`, read with the current `columns`:
    a column added after `version` gives its default (or NULL), dropped ones go."""
    n = rows.num_rows
    names = set(rows.column_names)
    arrays, fields = [], []
    for f in storage_schema(table, columns):
        col = next((c for c in columns if c["name"] == f.name), None)
        if f.name in names and (col is None or col.get("since", 1) <= version):
            arr = rows.column(f.name)
            if arr.type != f.type:
                arr = arr.cast(f.type)
        else:
            value = default_value(col) if col is not None else None
            arr = pa.array([value] * n, type=arrow_type(col) if col else f.type)
        arrays.append(arr)
        fields.append(f.with_nullable(True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def conform_batches(batches: Iterable[BufBatch], table: Table, columns: list[Column],
                    version: int, loose: pa.Schema,
                    strict: pa.Schema | None = None) -> list[pa.Table]:
    """`conform` for many batches, cast to `loose` (the storage schema with
    every field nullable, as of schema `version`). Consecutive batches written
    under one version with one schema are joined in Arrow first and conformed
    once, and those written under `version` with exactly the storage schema
    need no conforming at all: `conform` costs ~0.25 ms of Python a call, so a
    buffer of 2,000 single-row INSERTs took ~0.5 s of CPU (holding the GIL
    beside the writers) where this takes a few milliseconds. `strict`: the
    storage schema as of `version`, if the caller has it (made otherwise)."""
    out: list[pa.Table] = []
    group: list[BufBatch] = []
    g_version, g_schema = 0, loose
    current = strict

    def close() -> None:
        nonlocal current
        parts: list[pa.Table] = []
        run: list[OneRow] = []
        for b in group:
            if isinstance(b, OneRow):
                run.append(b)
                continue
            if run:
                parts.append(one_row_tables(run))
                run = []
            parts.append(b.rows)
        if run:
            parts.append(one_row_tables(run))
        rows = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        if g_version == version:
            if current is None:
                current = storage_schema(table, columns)
            if g_schema.equals(current):
                out.append(pa.Table.from_arrays(rows.columns, schema=loose))
                return
        out.append(conform(rows, g_version, table, columns).cast(loose))

    for b in batches:
        s = b.schema if isinstance(b, OneRow) else b.rows.schema
        if group and (b.version != g_version or not (s is g_schema or s.equals(g_schema))):
            close()
            group = []
        if not group:
            g_version, g_schema = b.version, s
        group.append(b)
    if group:
        close()
    return out


@dataclass
class TableState:
    """The engine's in-memory view of one table: its definition, current
    schema, registered files and decoded buffer. `lock` guards the snapshot a
    query takes (files + buffer) against a flush or write committing midway;
    `write_lock` serialises statements that change the table."""

    table: Table
    schema: TableSchema
    files: list[DataFile]
    batches: BatchMap
    append_only: bool
    dropped: bool = False
    lock: TimedLock = field(default_factory=lambda: TimedLock("table"))
    write_lock: TimedLock = field(default_factory=lambda: TimedLock("write"))
    flush_lock: TimedLock = field(default_factory=lambda: TimedLock("flush", reentrant=False))
    _cache: dict[str, tuple[int, tuple[bytes, ...], pa.Table]] = field(default_factory=dict)
    # The primary keys of the buffered row versions (see storage/keys.py); guarded by `lock`.
    keys: BufferKeys = field(default_factory=BufferKeys)
    # Per cache slot of `buffer_table`: (id and generation of `batches`, how many
    # of its entries the cached conversion covers).
    _covers: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    _row_schema: tuple[int, pa.Schema, pa.StructType] | None = None  # see row_schema()

    @property
    def uid(self) -> str:
        return self.table.uid

    def replace_definition(self, table: Table, schema: TableSchema) -> None:
        """A new schema version (ALTER TABLE): cached conversions go."""
        with self.lock:
            self.table, self.schema = table, schema
            self._cache.clear()
            self._covers.clear()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """`write_lock` for a statement writing the table; `Replaced` (nothing
        written, run again on what the name names now: resolve.written) if a
        DROP or a RESTORE ... replace dropped it while the statement waited."""
        with bounded(self.write_lock):  # the statement's time limit and cancel bound the wait
            if self.dropped:
                raise Replaced(f"{self.table.namespace}.{self.table.name}")
            yield

    def mark_dropped(self) -> None:
        """The table is gone: statements still waiting on it run again, queries see nothing."""
        with self.lock:
            self.dropped = True
            self.batches, self.files = BatchMap(), []
            self._cache.clear()
            self._covers.clear()

    def cached_buffer(self) -> tuple[int, tuple[bytes, ...], pa.Table] | None:
        """The all-users buffer conversion cached by `buffer_table` (call with `lock` held)."""
        return self._cache.get("*")

    def cached_cover(self) -> tuple[int, int, int] | None:
        """The batches `cached_buffer` covers, as `conversion_mark` gave them
        then (None: unknown; call with `lock` held)."""
        return self._covers.get("*")

    def conversion_mark(self) -> tuple[int, int, int]:
        """What `keep_conversion` checks a conversion of every batch held now
        against (call with `lock` held): the batches' map, its generation (it
        changes when a batch is removed or replaced) and its length."""
        mine = self.batches
        return id(mine), mine.generation, len(mine)

    def keep_conversion(self, version: int, keys: tuple[bytes, ...], rows: pa.Table,
                        mark: tuple[int, int, int]) -> None:
        """Keep `rows`, a conversion of every buffered batch (the batches
        under `keys`, in order, as held when `conversion_mark` gave `mark`,
        conformed to schema `version` as `buffer_table` conforms them), as
        `buffer_table`'s all-users cache: the next conversion of the buffer
        converts only the batches appended since. Not if a batch was removed
        or replaced since the mark, the schema changed, the cache already
        covers as much, or the rows are over KEEP_CONVERSION_BYTES (the copy
        stays until the next flush)."""
        if rows.get_total_buffer_size() > KEEP_CONVERSION_BYTES:
            return
        with self.lock:
            mine = self.batches
            if (self.dropped or self.schema.version != version
                    or mark[:2] != (id(mine), mine.generation)
                    or mark[2] > len(mine) or len(keys) != mark[2]):
                return
            cached = self._cache.get("*")
            if cached is not None and cached[0] == version and len(cached[1]) >= len(keys):
                return
            self._cache["*"] = (version, keys, rows)
            self._covers["*"] = mark

    def forget_conversions(self) -> None:
        """After a flush took batches away: the cached conversions of the
        buffer hold rows that are now in files (their keys no longer lead the
        buffer, so none would be reused), and only memory (call with `lock`)."""
        for slot in [s for s in self._cache if s != "schema"]:
            del self._cache[slot]
        self._covers.clear()

    @property
    def columns(self) -> list[Column]:
        return self.schema.columns

    family = bufstore.FAMILY  # the RocksDB family of every table's buffer

    @property
    def prefix(self) -> bytes:
        """The start of this table's keys in `family`."""
        return bufstore.prefix(self.table.uid)

    def loose_schema(self) -> pa.Schema:
        """The storage schema, every field nullable (cached per schema version)."""
        return self.loose_empty().schema

    def loose_empty(self) -> pa.Table:
        """An empty table of `loose_schema` (cached with it: one costs ~37 µs
        to make, and a point lookup of a key with no buffered version, in
        `key_rows`, answers one)."""
        cached = self._cache.get("schema")
        if cached is not None and cached[0] == self.schema.version:
            empty: pa.Table = cached[2]
            return empty
        schema = pa.schema([f.with_nullable(True) for f in storage_schema(self.table, self.columns)])
        empty = schema.empty_table()
        self._cache["schema"] = (self.schema.version, (), empty)
        return empty

    def row_schema(self) -> pa.Schema:
        """The storage schema new rows are made with (cached per schema
        version): every buffered batch then shares one schema object, ~2.7 KB
        less per batch than a schema of its own (4,000 single-row INSERTs
        held 11 MB more)."""
        cached = self._row_schema
        if cached is not None and cached[0] == self.schema.version:
            return cached[1]
        schema = storage_schema(self.table, self.columns)
        self._row_schema = (self.schema.version, schema, pa.struct(list(schema)))
        return schema

    def row_struct(self) -> pa.StructType:
        """`row_schema` as a struct type (a row of it converts in one call)."""
        self.row_schema()
        assert self._row_schema is not None
        return self._row_schema[2]

    def buffered_rows(self) -> int:
        return self.batches.rows

    def buffered_bytes(self) -> int:
        """About the bytes of the buffered values (batch.batch_bytes)."""
        return self.batches.nbytes

    def oldest_ts(self) -> float | None:
        """When the oldest buffered row was written (batches are in commit order)."""
        first = self.batches.first()
        return None if first is None else first.ts

    def ttl_floor(self) -> float | None:
        """Stream tables: rows written before this instant have expired."""
        ttl = self.table.options.get("ttl_seconds")
        if self.table.table_type != "stream" or not ttl:
            return None
        return bufclock.now() - float(ttl)

    def key_rows(self, found: list[bytes], point: dict[str, Any], user: str | None,
                 min_ts: float | None = None) -> pa.Table | None:
        """The buffered versions of one key (`point`: {pk column: value}),
        read from the batches stored under `found` (the key index's answer, a
        superset) and conformed like `buffer_table`: USER tables only
        `user`'s, stream tables only rows written from `min_ts`. None if a
        value does not compare with its column (the caller then cuts the
        whole buffer as before). Call with `lock` held."""
        every = self.table.table_type != "user"
        version, mine = self.schema.version, self.batches
        kept: list[BufBatch] = []
        for b in (mine.get(k) for k in found):
            if b is None or not (every or b.user == user) or (min_ts is not None and b.ts < min_ts):
                continue
            if isinstance(b, OneRow):
                hit = b.matches(point)
                if hit is not None:
                    if hit:
                        kept.append(b)
                    continue
            rows = b.rows
            try:
                if rows.num_rows == 1:  # most batches: one INSERT of one row
                    if all(rows.column(k)[0].as_py() == v for k, v in point.items()):
                        kept.append(b)
                    continue
                rows = rows.filter(point_mask(rows, point))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError):
                return None
            if rows.num_rows:
                kept.append(BufBatch(b.key, b.version, b.ts, b.user, rows))
        strict = self.row_schema()
        if len(kept) == 1 and kept[0].version == version:
            # One version, as written now: the rows as they are (only the
            # fields' nullability differs from `loose_schema`, which neither
            # DuckDB nor a direct answer reads; a copy costs ~35 µs). A
            # OneRow's `rows` converts its values each time: read it once.
            only = kept[0].rows
            if only.schema.equals(strict):
                return only
        if not kept:  # no buffered version: most lookups of a flushed key
            return self.loose_empty()
        schema = self.loose_schema()
        parts = conform_batches(kept, self.table, self.columns, version, schema, strict)
        if not parts:
            return self.loose_empty()
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def buffer_table(
        self, user: str | None = None, *, all_users: bool = False, min_ts: float | None = None
    ) -> pa.Table:
        """The buffered rows conformed to the current schema (USER tables: only
        `user`'s rows unless `all_users`). Call with `lock` held.

        Cached per user and extended in place as statements append, so a query
        after each single-row INSERT does not re-decode the whole buffer."""
        every = all_users or self.table.table_type != "user"
        slot = "*" if every else f"u:{user}"
        cached = self._cache.get(slot)
        schema = self.loose_schema()
        mine = self.batches
        mark = (id(mine), mine.generation)
        cover = self._covers.get(slot)
        if (min_ts is None and cached is not None
                and cached[0] == self.schema.version and cover is not None
                and cover[:2] == mark and cover[2] <= len(mine)):
            # Only appends since the cached conversion: convert just the new
            # batches (a query after each single-row INSERT must not walk the
            # whole buffer under the table's lock).
            batches = [b for b in mine.tail(len(mine) - cover[2]) if every or b.user == user]
            base, start = cached[2], 0
            keys = cached[1] + tuple(b.key for b in batches)
        else:
            batches = [
                b for b in mine.values()
                if (every or b.user == user) and (min_ts is None or b.ts >= min_ts)
            ]
            keys = tuple(b.key for b in batches)
            if (cached is not None and cached[0] == self.schema.version
                    and keys[: len(cached[1])] == cached[1]):
                base, start = cached[2], len(cached[1])
            else:
                base, start = self.loose_empty(), 0
        parts = conform_batches(batches[start:], self.table, self.columns, self.schema.version,
                                schema, self.row_schema())
        out = pa.concat_tables([base, *parts]) if parts else base
        if out.column(0).num_chunks > 64:
            out = out.combine_chunks()
        if min_ts is None:
            self._covers[slot] = (*mark, len(mine))
        else:
            self._covers.pop(slot, None)
        self._cache[slot] = (self.schema.version, keys, out)
        return out


def visible_names(columns: list[Column]) -> list[str]:
    return [c["name"] for c in columns if c["name"] not in HIDDEN]


def now() -> float:
    """A buffered row's write time (`cairn.ts`): bufclock, which does not jump."""
    return bufclock.now()


def evict_overflow(st: TableState, adding: int, b: Any) -> dict[bytes, BufBatch | None]:
    """Stream tables: the oldest rows beyond `max_buffer` go in the same batch.
    Walks only the batches it evicts (call with `lock` held: the map does not
    change meanwhile), not a copy of the whole buffer per INSERT."""
    limit = st.table.options.get("max_buffer") if st.table.table_type == "stream" else None
    out: dict[bytes, BufBatch | None] = {}
    excess = st.buffered_rows() + adding - int(limit) if limit else 0
    for key, batch in st.batches.items():
        if excess <= 0:
            break
        if batch.num_rows <= excess:
            b.delete_raw(st.family, st.prefix + key)
            out[key] = None
            excess -= batch.num_rows
        else:
            kept = batch.rows.slice(excess)
            b.put_raw(st.family, st.prefix + key, encode(kept, batch.version, batch.ts, batch.user))
            out[key] = BufBatch(key, batch.version, batch.ts, batch.user, kept)
            excess = 0
    return out
