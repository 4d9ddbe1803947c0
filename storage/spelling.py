"""Values spelled as DuckDB spells them.

A value written into a TEXT or JSON column is stored as the query engine
would give it for the same SQL: `1e5` is a DOUBLE to DuckDB (`'100000.0'` as
text), `1.5` a DECIMAL (a JSON number, not the string `"1.5"`), a BLOB inside
a struct is DuckDB's text of it. Rather than copy DuckDB's rules, a private
in-memory DuckDB (no file or network access) is asked.

A statement's DECIMAL texts (`decimal_casts`) are cast in chunks, each query
bounded by the statement's time limit and stopped by its cancel
(storage/stopping.py) as the engine's queries are, the lock on the DuckDB
held a chunk at a time: one statement's million texts never hold another's
one text for longer than a chunk."""

from __future__ import annotations

import contextlib
import decimal
import functools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from catalog.errors import Cancelled

from . import stopping
from .arrowtypes import holds
from .duckrestart import invalidating
from .sandbox import in_utc, scratch_config
from .watchdog import Watchdog


class NumberText(decimal.Decimal):
    """A number literal's value with its SQL text: DuckDB reads `1e5` as a
    DOUBLE and `1.50` as a DECIMAL(3,2), which a Decimal alone does not say."""

    sql: str

    @classmethod
    def of(cls, value: decimal.Decimal | str, sql: str) -> NumberText:
        out = cls(value)
        out.sql = sql
        return out


_lock = threading.Lock()
_con: duckdb.DuckDBPyConnection | None = None
# Interrupts a query past its statement's time limit, again every 50 ms until
# it ends (DuckDB drops an interrupt sent before its query starts).
_watchdog = Watchdog()


def _run(query: str, table: pa.Table | None = None, params: list[Any] | None = None,
         stoppable: bool = False) -> list[Any]:
    """The query's first column. `stoppable` (a statement's work before its
    commit): past this thread's statement's time limit DuckDB is interrupted
    and CANCELLED raised, as for a query of the engine's (`stopping.overdue`),
    and a cancel of the statement interrupts it too."""
    global _con
    with _lock:
        if _con is None:
            con = duckdb.connect(":memory:", config=scratch_config())
            in_utc(con)  # a TIMESTAMP WITH TIME ZONE as the server's DuckDB writes it
            con.execute("SET python_enable_replacements = false")
            con.execute("SET enable_external_access = false")
            _con = con
        limit = stopping.time_limit() if stoppable else None
        alarm = None if limit is None else _watchdog.arm(
            max(0.0, limit[0] - time.monotonic()), _con.interrupt)
        interrupt = stopping.target() if stoppable else None
        try:
            if interrupt is not None:
                interrupt(_con.interrupt)  # CANCELLED if cancelled already
            if table is None:  # a client's value only ever as a bound parameter
                return [r[0] for r in _con.execute(query, params).fetchall()]
            _con.register("v", table)
            try:
                return [r[0] for r in _con.execute(query).fetchall()]
            finally:
                _con.unregister("v")
        except duckdb.Error as exc:
            if invalidating(exc):  # DuckDB's bug left it invalid: a new one next time
                _con = None
            if alarm is not None and _watchdog.disarm(alarm):
                raise stopping.overdue(limit[1] if limit else None) from None
            if isinstance(exc, duckdb.InterruptException):
                raise Cancelled("query cancelled at the client's request") from None
            raise
        finally:
            if interrupt is not None:
                interrupt(None)
            if alarm is not None:  # before the lock is let go: it interrupts no one else's
                _watchdog.disarm(alarm)


def _asked(query: str, table: pa.Table | None = None,
           params: list[Any] | None = None, stoppable: bool = False) -> list[Any]:
    """`_run`, a refusal by DuckDB (a cast it cannot make) a ValueError with
    its first line."""
    try:
        return _run(query, table, params, stoppable)
    except duckdb.Error as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def _column_asked(query: str, column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """`query` of table `v` holding `column` as `c`, CHECK_CELLS values a
    query, each bounded by the statement's time limit and stopped by its
    cancel (`stoppable`), `stopping.check` between them, the lock held a
    chunk at a time: an INSERT ... SELECT of a million values into a TEXT or
    JSON column was one query under the lock, with neither."""
    out: list[Any] = []
    for span in stopping.spans(len(column)):
        out += _asked(query, pa.table({"c": column[span]}), stoppable=True)
    return out


@functools.lru_cache(maxsize=4096)
def spelled(sql: str, to: str) -> str:
    """DuckDB's `CAST(<sql> AS <to>)` as text: `sql` is a literal Cairn made
    (a number, a quoted date), never a client's text. ValueError if DuckDB
    refuses it."""
    return str(_asked(f"SELECT CAST(CAST({sql} AS {to}) AS VARCHAR)")[0])


_CAST_READS = re.compile("[eE_]")


def cast_reads(text: str) -> bool:
    """Whether text into a DECIMAL holds what DuckDB's CAST reads by rules of
    its own (an exponent, underscores): Python's Decimal() read '1e-9' and
    '_1', which no query's WHERE with the same literal then found."""
    return _CAST_READS.search(text) is not None


def kept_decimal(text: str) -> decimal.Decimal | str:
    """A DECIMAL column's DEFAULT kept as text with an exponent (Python's
    text of DEFAULT 0.000000001 is '1E-9'; a client's '1e-9' was taken before
    2026-12-06) as Python's Decimal() read it when it was kept; the text if
    it reads no number (a manifest's: the write of it refuses it)."""
    try:
        return decimal.Decimal(text.strip())
    except ArithmeticError:
        return text


def decimal_cast(text: str, precision: int, scale: int) -> decimal.Decimal:
    """DuckDB's `CAST(text AS DECIMAL(p,s))` of a client's text (a bound
    parameter, never spliced into SQL): its rules for an exponent or
    underscores are its own ('0.1e-8' into DECIMAL(9,9) is read, '1e-9' is
    not; '1_000' is, '_1' is not). ValueError if DuckDB refuses it."""
    known: dict[tuple[str, int, int], decimal.Decimal] | None = getattr(_batch, "memo", None)
    if known is not None and (text, precision, scale) in known:
        return known[text, precision, scale]
    value = _asked(f"SELECT CAST(?::VARCHAR AS DECIMAL({int(precision)},{int(scale)}))",
                   params=[text])[0]
    return decimal.Decimal(value)


_batch = threading.local()


@contextlib.contextmanager
def decimal_casts(groups: list[tuple[int, int, list[str]]]) -> Iterator[None]:
    """A statement's texts for DECIMAL columns, (precision, scale, texts) a
    column, cast by DuckDB in a query a CHECK_CELLS texts while the block
    runs, not one a value (30,000 rows of '1e0' took 10 s, and held every
    other write to the table): `decimal_cast` finds them there. A text
    DuckDB refuses is not kept: `decimal_cast` asks again and says why.
    Between chunks `stopping.check`: past the statement's timeout or cancel,
    CANCELLED (1,200,000 texts in one query ran 6 s against a 2 s timeout,
    and held every other statement's cast that long)."""
    memo: dict[tuple[str, int, int], decimal.Decimal] = {}
    for precision, scale, texts in groups:
        seen: dict[str, None] = {}  # the unique texts, `stopping.check` between chunks
        for span in stopping.spans(len(texts)):
            seen.update(dict.fromkeys(texts[span]))
        unique = list(seen)
        for span in stopping.spans(len(unique)):
            chunk = pa.array(unique[span], pa.string())
            rows = _run(f"SELECT {{'x': x, 'd': TRY_CAST(x AS DECIMAL({int(precision)},"
                        f"{int(scale)}))}} FROM v", pa.table({"x": chunk}), stoppable=True)
            memo.update(((r["x"], precision, scale), decimal.Decimal(r["d"]))
                        for r in rows if r["d"] is not None)
    before = getattr(_batch, "memo", None)
    _batch.memo = memo
    try:
        yield
    finally:
        _batch.memo = before


def number_sql(value: decimal.Decimal | float) -> str:
    """A number as the SQL literal DuckDB reads as it was written: a literal's
    own text; a Decimal with its digits (`1.50`, a DECIMAL(3,2); `1E+5`, from
    an exponent, a DOUBLE); a float as a DOUBLE. A DEFAULT's number with an
    exponent carries its text too (sqlgrammar's ExponentNumber)."""
    sql = getattr(value, "sql", None)
    if isinstance(sql, str):
        return sql
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)"
    magnitude = value.copy_abs()
    exponent = magnitude.as_tuple().exponent
    digits = str(magnitude) if isinstance(exponent, int) and exponent > 0 else format(magnitude, "f")
    return f"-({digits})" if value.is_signed() else digits


def json_column(column: pa.Array | pa.ChunkedArray, to: str = "JSON") -> pa.Array:
    """A column of any type as DuckDB's CAST(... AS JSON) text (nested values,
    decimals, blobs, times as DuckDB writes them), or `to` VARCHAR. ValueError
    if DuckDB refuses."""
    if holds(column.type, _wide_decimal) and _holds_least_hugeint(column):
        # A HUGEINT reaches Arrow as a decimal128(38, 0), and DuckDB's cast of
        # that DECIMAL holding -2^127 (the least HUGEINT, which no DECIMAL(38)
        # holds) is an internal error: INSERT ... SELECT -2^127 into TEXT
        # invalidated the DuckDB this asks. Its text is its digits.
        if not _wide_decimal(column.type):
            raise ValueError(f"{_LEAST_HUGEINT} (the least HUGEINT) inside a list, struct or "
                             "map cannot be written as text or JSON: cast it to VARCHAR in "
                             "the query")
        return pa.array(pc.cast(column, pa.string()).to_pylist(), pa.string())
    values = _column_asked(f"SELECT CAST(CAST(c AS {to}) AS VARCHAR) FROM v", column)
    return pa.array(values, pa.string())


def json_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Values DuckDB hands on as text that are not text to it (a UUID, a BIT,
    an ENUM) as the JSON strings its CAST(... AS JSON) makes of them (the
    CAST of text would read the text as JSON)."""
    values = _column_asked("SELECT CAST(to_json(CAST(c AS VARCHAR)) AS VARCHAR) FROM v", column)
    return pa.array(values, pa.string())


def times_of(column: pa.Array | pa.ChunkedArray, to: str) -> pa.Array:
    """A TIMESTAMP_NS column (which Python cannot hold to the nanosecond) as
    DuckDB's CAST(... AS TIMESTAMP) or `to` DATE: microseconds, rounded as a
    query rounds them. ValueError if DuckDB refuses."""
    values = _column_asked(f"SELECT CAST(c AS {'DATE' if to == 'DATE' else 'TIMESTAMP'}) FROM v",
                           column)
    return pa.array(values, pa.date32() if to == "DATE" else pa.timestamp("us"))


_LEAST_HUGEINT = str(-(1 << 127))


def _wide_decimal(t: pa.DataType) -> bool:
    return bool(pa.types.is_decimal128(t) and t.precision == 38 and t.scale == 0)


def _holds_least_hugeint(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether -2^127 is anywhere in the column, at any depth."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for arr in chunks:
        t = arr.type
        if _wide_decimal(t):
            found = bool(pc.any(pc.equal(pc.cast(arr, pa.string()), _LEAST_HUGEINT)).as_py())
        elif pa.types.is_dictionary(t):
            found = _holds_least_hugeint(arr.dictionary)
        elif pa.types.is_map(t):
            found = _holds_least_hugeint(arr.keys) or _holds_least_hugeint(arr.items)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            found = _holds_least_hugeint(arr.flatten())
        elif pa.types.is_struct(t) or pa.types.is_union(t):
            found = any(_holds_least_hugeint(arr.field(i)) for i in range(t.num_fields))
        else:
            found = False
        if found:
            return True
    return False


def json_of(value: Any) -> str:
    """A Python value (a literal, a default, a query's value) as the JSON text
    DuckDB's cast to JSON gives for it."""
    if isinstance(value, decimal.Decimal | float) and not isinstance(value, bool):
        return spelled(number_sql(value), "JSON")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_of(str(k))}:{json_of(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return json_of(dict(value))  # a MAP, as Arrow gives it
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_of(v) for v in value) + "]"
    return str(json_column(pa.array([value]))[0])
