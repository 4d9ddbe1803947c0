"""The two DuckDB calls the engine makes per query, on the fastest path the
installed duckdb offers.

duckdb 2's Python layer (`duckdb._seam`) can register an Arrow table as a
source in ~10 us (`register()` takes ~0.5 ms: it creates a view) and run one
statement straight to Arrow (`sql().to_arrow_table()` parses the statement
three times and binds it twice first, ~0.2 ms more). Where that layer is
missing or not the one we know, the public calls are used: same results, only
slower. Sources live while their handle does and are dropped after the query;
their names are random and never reach the user (errors name the user's table)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, cast

import duckdb
import pyarrow as pa

from catalog.errors import InvalidArgument

from .arrowtypes import holds
from .bits import bits_as_text
from .limits import compact

log = logging.getLogger("cairn.storage")

try:
    from duckdb import _seam as _duckdb_seam
except ImportError:  # another duckdb: the public API
    _duckdb_seam = None  # type: ignore[assignment]

BATCH_ROWS = 131_072
_SUBMIT: Any = getattr(_duckdb_seam, "submit", None)
_DUCKDB_TYPE: Any = duckdb.sqltypes.DuckDBPyType  # what `.types` and a description hold
_REGISTER: Any = getattr(_duckdb_seam, "register_source", None)


def fetch_arrow(cur: Any, sql: str, kinds: list[Any] | None = None) -> pa.Table:
    """Run one SELECT on `cur` and return all its rows as Arrow; DuckDB's own
    types of its columns appended to `kinds`, where the run says them (`Kinds`)."""
    global _SUBMIT
    if _SUBMIT is not None:
        try:
            result = _SUBMIT(cur, sql, None, "arrow", BATCH_ROWS)
            _note_kinds(result, kinds)
            return result.arrow_table()
        except (TypeError, AttributeError):  # not the signature we know
            log.warning("duckdb's submit is not as expected: using sql().to_arrow_table()")
            _SUBMIT = None
    return cur.sql(sql).to_arrow_table()


def fetch_bounded(cur: Any, sql: str, max_rows: int | None, max_bytes: int | None,
                  kinds: list[Any] | None = None) -> tuple[pa.Table, bool]:
    """Run one SELECT, streaming its rows, and stop reading once `max_rows` rows
    or `max_bytes` bytes (Arrow buffer sizes) are read: (rows, truncated).
    DuckDB produces the rows batch by batch, so an answer of millions of rows
    is never held whole; the rest of it is never computed. `kinds`: fetch_arrow."""
    reader = _reader(cur, sql, kinds)
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    truncated = False
    try:
        for batch in _batches(reader):
            if max_rows is not None and rows + batch.num_rows > max_rows:
                batch = batch.slice(0, max_rows - rows)
                truncated = True
            if max_bytes is not None and size + batch.nbytes > max_bytes:
                batch = batch.slice(0, _rows_within(batch, max_bytes - size))
                truncated = True
            if truncated:  # the rows kept, not the whole batch they were cut from
                batch = compact(batch)
            batches.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if truncated:
                break
    finally:
        reader.close()
    return pa.Table.from_batches(batches, schema=reader.schema), truncated


# DuckDB's error classes by the prefix of its message, for an error raised
# while the answer streams: pyarrow hands it on as an OSError (or ArrowInvalid)
# with DuckDB's message, which the engine would otherwise not know as DuckDB's.
_DUCKDB_ERRORS = {
    "INTERRUPT Error": duckdb.InterruptException,
    "Out of Memory Error": duckdb.OutOfMemoryException,
    "Permission Error": duckdb.PermissionException,
    "IO Error": duckdb.IOException,
    "INTERNAL Error": duckdb.InternalException,  # these two invalidate the database
    "FATAL Error": duckdb.FatalException,
}
_DUCKDB_MESSAGE = re.compile(r"[A-Z][A-Za-z ]{0,40} Error: ")


def streamed_error(exc: Exception) -> Exception:
    """The DuckDB error an error raised while reading a streamed batch stands
    for; `exc` itself if it is not DuckDB's."""
    message = str(exc)
    if isinstance(exc, duckdb.Error) or not (
        isinstance(exc, OSError) or _DUCKDB_MESSAGE.match(message)
    ):
        return exc
    kind = _DUCKDB_ERRORS.get(message.split(":", 1)[0], duckdb.InvalidInputException)
    return cast(Exception, kind(message))


def _batches(reader: Any) -> Iterator[pa.RecordBatch]:
    """The reader's batches; an error DuckDB raises while it makes one is
    raised as DuckDB's error, as it would be for the first batch."""
    it = iter(reader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise streamed_error(exc) from exc
        yield batch


def _reader(cur: Any, sql: str, kinds: list[Any] | None = None) -> Any:
    """A streaming RecordBatchReader over one SELECT (`submit` in "stream" mode
    costs as little as the materializing call; the public API ~0.8 ms more)."""
    global _SUBMIT
    if _SUBMIT is not None:
        try:
            result = _SUBMIT(cur, sql, None, "stream", BATCH_ROWS)
            _note_kinds(result, kinds)
            return result.arrow_reader()
        except (TypeError, AttributeError):  # not the signature we know
            log.warning("duckdb's submit is not as expected: using sql().to_arrow_reader()")
            _SUBMIT = None
    return cur.sql(sql).to_arrow_reader(BATCH_ROWS)


def checked(cur: Any, sql: str, result: pa.Table, noted: list[Any] | None = None) -> pa.Table:
    """An answer as it is returned: refused when it holds a value that would
    read back wrong, its BIT values as text (storage/bits.py). `noted`: DuckDB's
    types of its columns as the run said them (fetch_arrow), if it did."""
    kinds = Kinds(cur, sql, noted)
    refuse_unsigned_huge(cur, sql, result.schema, kinds)
    refuse_time_with_zone(cur, sql, result.schema, kinds)
    refuse_variant(result.schema)
    refuse_wrapped_intervals(result)
    return uuids_marked(cur, sql, bits_as_text(cur, sql, result, kinds), kinds)


class Kinds:
    """DuckDB's own types of one answer's columns, which Arrow's cannot tell
    (UHUGEINT, TIMETZ, UUID, BIT). Those the run said (its result's
    description, read before its rows: the statement that ran, so the types
    it had), else the statement bound once more, not run, once for all the
    checks (binding a read of 40 Parquet files took as long as running it)."""

    __slots__ = ("cur", "known", "sql")

    def __init__(self, cur: Any, sql: str, noted: list[Any] | None = None) -> None:
        self.cur, self.sql = cur, sql
        self.known = list(noted) if noted else None

    def __call__(self) -> list[Any]:
        if self.known is None:
            self.known = list(self.cur.sql(self.sql).types)
        return self.known


def _note_kinds(result: Any, kinds: list[Any] | None) -> None:
    """Append the types `result`'s description gives to `kinds`; none (and
    `kinds` left empty: Kinds binds) if it gives none as we know them."""
    if kinds is None:
        return
    try:
        noted = [d[1] for d in result.description]
    except (AttributeError, TypeError, IndexError, duckdb.Error):
        return
    if all(isinstance(k, _DUCKDB_TYPE) for k in noted):
        kinds.extend(noted)


UUID_KEY = b"cairn.uuid"


def uuids_marked(cur: Any, sql: str, table: pa.Table, kinds: Kinds | None = None) -> pa.Table:
    """`table` with its UUID columns marked (UUID_KEY): DuckDB hands a UUID to
    Arrow as text, which a JSON column took as JSON text ('0000...-000a' is no
    JSON: refused), where CAST(... AS JSON) makes a JSON string of it
    (storage/values.py). No Cairn column is a UUID, so every UUID in an answer
    is named by the query (`::UUID`, `uuid()`, `gen_random_uuid()`): only then
    is an answer with a text column bound once more, not run."""
    if "uuid" not in sql.lower() or not any(pa.types.is_string(f.type) for f in table.schema):
        return table
    types = (kinds or Kinds(cur, sql))()
    if len(types) != table.num_columns or not any(k.id == "uuid" for k in types):
        return table
    fields = [f.with_metadata({**(f.metadata or {}), UUID_KEY: b"true"}) if k.id == "uuid" else f
              for f, k in zip(table.schema, types, strict=True)]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, table.schema.metadata))


def refuse_unsigned_huge(cur: Any, sql: str, schema: pa.Schema,
                         kinds: Kinds | None = None) -> None:
    """InvalidArgument for an answer with a UHUGEINT column. DuckDB hands
    UHUGEINT to Arrow as decimal128(38, 0) bit for bit, so `md5_number('b')`
    (190532336368564675417118094528692087698) read back as a negative number.
    The sandbox refuses the type and literals past HUGEINT before the query
    runs; a function's result is found here: an answer with a decimal128(38,
    0) anywhere in it (HUGEINT and DECIMAL(38,0) look the same) is bound once
    more, not run, to read DuckDB's own types."""
    if not any(_wide_decimal(f.type) for f in schema):
        return
    if any("UHUGEINT" in str(t) for t in (kinds or Kinds(cur, sql))()):
        raise InvalidArgument(
            "a UHUGEINT value (from a function such as md5_number()) is not supported: "
            "its values past 2^127 - 1 would read back wrong; cast it to VARCHAR")


def refuse_time_with_zone(cur: Any, sql: str, schema: pa.Schema,
                          kinds: Kinds | None = None) -> None:
    """InvalidArgument for an answer holding a TIME WITH TIME ZONE (TIMETZ,
    `current_time`), at any depth. DuckDB hands it to Arrow as a time64 without
    its UTC offset: TIMETZ '12:00:00+05' came back as 12:00:00, and an INSERT
    (VALUES, ... SELECT, UPDATE SET: their values are such answers) stored
    '12:00:00' in a TEXT or JSON column, where CAST gives '12:00:00+05'. An
    answer with a time64 anywhere in it is bound once more, not run, to read
    DuckDB's own types."""
    if not any(holds(f.type, pa.types.is_time64) for f in schema):
        return
    if any(_has_time_zone(t) for t in (kinds or Kinds(cur, sql))()):
        raise InvalidArgument(
            "a TIME WITH TIME ZONE value (TIMETZ, current_time) is not supported: it would "
            "lose its UTC offset ('12:00:00+05' read back as 12:00:00); cast it to VARCHAR "
            "(or to TIME, dropping the offset)")


def _has_time_zone(kind: Any) -> bool:
    if kind.id == "time with time zone":
        return True
    if kind.id in ("list", "array", "struct", "map", "union"):
        return any(_has_time_zone(c) for _, c in kind.children if not isinstance(c, int))
    return False


def refuse_variant(schema: pa.Schema) -> None:
    """InvalidArgument for an answer holding a VARIANT (`1::VARIANT`,
    `stats(x)`): DuckDB hands it to Arrow as its encoding (a struct of
    `metadata` and `value` bytes), which came back over HTTP and pgwire, and
    was stored as that struct's text by an INSERT ... SELECT into TEXT."""
    def variant(f: pa.Field) -> bool:
        if (f.metadata or {}).get(b"ARROW:extension:name") == b"arrow.parquet.variant":
            return True
        t = f.type
        children = ([t.field(i) for i in range(t.num_fields)]
                    if pa.types.is_struct(t) or pa.types.is_union(t)
                    else [t.value_field] if pa.types.is_list(t) or pa.types.is_large_list(t)
                    or pa.types.is_fixed_size_list(t)
                    else [t.key_field, t.item_field] if pa.types.is_map(t) else [])
        return any(variant(c) for c in children)
    if any(variant(f) for f in schema):
        raise InvalidArgument(
            "a VARIANT value (from a cast to VARIANT or a function such as stats()) is not "
            "supported: an answer would carry its encoding, not its value; cast it to VARCHAR")


def _wide_decimal(t: pa.DataType) -> bool:
    return holds(t, lambda k: pa.types.is_decimal(k) and k.precision == 38 and k.scale == 0)


def refuse_wrapped_intervals(table: pa.Table) -> None:
    """InvalidArgument (22008) for an answer holding an INTERVAL whose time
    part is past 2^63 ns (2,562,047 hours, ~292 years). DuckDB keeps it in
    microseconds and hands it to Arrow's month_day_nano as micros * 1000,
    wrapped past int64: `to_hours(2600000)` read back as -2524095:34:33.709551616.
    A DuckDB interval is whole microseconds, so a value whose nanoseconds are
    not is a wrapped one (a wrap by a multiple of 125 * 2^64 ns, a time part
    near a multiple of 2^61 us, ~640 million hours, keeps them whole and cannot
    be told)."""
    for f, column in zip(table.schema, table.columns, strict=True):
        if not _holds_interval(f.type):
            continue
        if any(v.nanoseconds % 1000 for v in _intervals(column) if v is not None):
            exc = InvalidArgument(
                f"column '{f.name}' holds an INTERVAL past 2562047 hours (about 292 years) of "
                "time, which cannot be returned exactly; cast it to VARCHAR "
                "(CAST(... AS VARCHAR) is DuckDB's exact text of it)")
            exc.sqlstate = "22008"  # type: ignore[attr-defined]  # datetime_field_overflow
            raise exc


def _holds_interval(t: pa.DataType) -> bool:
    return holds(t, lambda k: k.id == _INTERVAL_ID)


_INTERVAL_ID = pa.month_day_nano_interval().id


def _intervals(column: pa.ChunkedArray | pa.Array) -> Iterator[Any]:
    """Every interval value in `column`, however deep (nulls as None)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for a in chunks:
        t = a.type
        if t.id == _INTERVAL_ID:
            yield from a.to_pylist()
        elif pa.types.is_dictionary(t):
            yield from _intervals(a.dictionary)
        elif pa.types.is_map(t):
            yield from _intervals(a.keys)
            yield from _intervals(a.items)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            yield from _intervals(a.flatten())
        elif pa.types.is_struct(t) or pa.types.is_union(t):
            for i in range(t.num_fields):
                yield from _intervals(a.field(i))


def _rows_within(batch: pa.RecordBatch, budget: int) -> int:
    """How many leading rows of `batch` fit in `budget` bytes (binary search)."""
    lo, hi = 0, batch.num_rows
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if batch.slice(0, mid).nbytes <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


class Cursor:
    """One thread's cursor on one DuckDB (nothing stays registered on it between queries)."""

    __slots__ = ("__weakref__", "cur", "generation", "slot")

    def __init__(self, cur: Any, slot: str, generation: int = 0) -> None:
        self.cur = cur
        self.slot = slot
        self.generation = generation  # of its DuckDB (storage/duckrestart.py)


class Sources:
    """Arrow tables registered on a cursor for one query; `close()` drops them."""

    __slots__ = ("cur", "handles", "names")

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.handles: list[Any] = []
        self.names: list[str] = []

    def add(self, placeholder: str, table: pa.Table) -> str:
        """Register `table`; the identifier the query text uses for it
        (`placeholder` itself when registered by name)."""
        global _REGISTER
        if _REGISTER is not None:
            try:
                handle = _REGISTER(self.cur, table)
                name = handle.name
            except (TypeError, AttributeError):
                log.warning("duckdb's register_source is not as expected: using register()")
                _REGISTER = None
            else:
                self.handles.append(handle)
                return '"' + name.replace('"', '""') + '"'  # type: ignore[no-any-return]
        self.cur.register(placeholder, table)
        self.names.append(placeholder)
        return placeholder

    def close(self) -> None:
        """Drop every registration (a handle unregisters when it is released)."""
        self.handles.clear()
        names, self.names = self.names, []
        for name in names:
            self.cur.unregister(name)
