"""A statement's result and the one serializer that turns it into contract JSON.

Every handler returns a `Result`; the HTTP layer never formats values itself.
Values follow the contract: timestamps as ISO-8601 UTC strings with `Z`, JSON
columns as JSON values (their stored text, `msgspec.Raw`), bytes as base64,
decimals as exact strings."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from catalog.errors import CairnError
from storage.jsoncheck import json_problem
from storage.scopes import duckdb_names

from .intervals import iso_duration
from .wide_dates import PER_SECOND, pylist

# Arrow field metadata key a producer sets to name the Cairn type of a column
# (e.g. b"JSON" on a string column holding JSON text).
CAIRN_TYPE_KEY = b"cairn.type"


@dataclass
class Result:
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_count: int = 0
    message: str | None = None
    truncated: bool = False  # cut at [server] max_result_rows / max_result_bytes
    # The rows as they came from the engine, when they did (exact values for
    # the PostgreSQL protocol, which does not go through JSON).
    table: pa.Table | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_message(cls, message: str, row_count: int = 0) -> Result:
        return cls(message=message, row_count=row_count)

    @classmethod
    def of_rows(
        cls,
        columns: list[tuple[str, str]],
        rows: list[dict[str, Any]],
        message: str | None = None,
    ) -> Result:
        """Rows already holding Python values; `columns` is (name, Cairn type)."""
        out = [{name: to_json_value(r.get(name), typ) for name, typ in columns} for r in rows]
        return cls(
            columns=[c for c, _ in columns],
            types=[t for _, t in columns],
            rows=out,
            row_count=len(out),
            message=message,
        )

    @classmethod
    def of_arrow(cls, table: pa.Table, message: str | None = None) -> Result:
        names = duckdb_names(table.column_names)  # a row is an object keyed by name
        types = [cairn_type(f) for f in table.schema]
        columns = [_json_column(table.column(i), types[i]) for i in range(table.num_columns)]
        rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        if not names:
            rows = [{} for _ in range(table.num_rows)]
        return cls(columns=names, types=types, rows=rows, row_count=len(rows), message=message,
                   table=table)

    def to_json(self) -> dict[str, Any]:
        out = {
            "columns": self.columns,
            "schema": [{"name": n, "type": t}
                       for n, t in zip(self.columns, self.types, strict=False)],
            "rows": self.rows,
            "row_count": self.row_count,
            "message": self.message,
        }
        if self.truncated:
            out["truncated"] = True
        return out


# A column this short takes one Python step per value: each Arrow compute
# call costs ~15-30 µs however few its values, and a point SELECT's one-row
# `_updated` took ~115 µs of the event loop through the Arrow path below
# (4 calls and 2 casts) against ~5 µs one value at a time.
SHORT_COLUMN = 64


def _json_column(column: pa.ChunkedArray, cairn_t: str) -> list[Any]:
    """One column's values as `to_json_value` makes them, a column at a time:
    integers, booleans and text come out of Arrow as they are shown, floats
    too when all are finite; only other types take a Python step per value
    (100,000 rows of six columns: 4.0 s one value at a time, on the loop), and
    columns of at most SHORT_COLUMN values."""
    t = column.type
    if cairn_t != "JSON" and (pa.types.is_integer(t) or pa.types.is_boolean(t)
                              or pa.types.is_string(t) or pa.types.is_large_string(t)
                              or pa.types.is_null(t)):
        return column.to_pylist()
    if len(column) <= SHORT_COLUMN:
        return [to_json_value(v, cairn_t) for v in pylist(column)]
    if pa.types.is_floating(t) and column.null_count < len(column) and pc.all(
            pc.is_finite(column), skip_nulls=True).as_py():
        return column.to_pylist()
    if pa.types.is_timestamp(t) and len(column) > column.null_count and _four_digit_years(column):
        # As to_json_value: UTC (a zone's stored values are UTC), milliseconds cut
        # toward the past (floor, as the digits of a datetime's microseconds are),
        # and a Z.
        naive = pc.floor_temporal(column, unit="millisecond").cast(pa.timestamp("ms"))
        return pc.binary_join_element_wise(
            pc.strftime(naive, "%Y-%m-%dT%H:%M:%S"), "Z", "").to_pylist()
    return [to_json_value(v, cairn_t) for v in pylist(column)]


def _four_digit_years(column: pa.ChunkedArray) -> bool:
    """Whether every time is in the years 1000-9999 (strftime's %Y has four
    digits there, in Arrow and in Python alike). A zone's stored values are
    UTC: read without it, they compare with a plain datetime."""
    unit = column.type.unit
    ints = column.cast(pa.timestamp(unit)).cast(pa.int64())  # no datetime past year 9999
    low, high = pc.min_max(ints).values()
    per_day = 86400 * PER_SECOND[unit]
    return bool(_DAY_1000 * per_day <= low.as_py() and high.as_py() < _DAY_10000 * per_day)


# 1000-01-01 and 10000-01-01 in days since the epoch (Python has no year 10000).
_DAY_1000 = (dt.date(1000, 1, 1) - dt.date(1970, 1, 1)).days
_DAY_10000 = (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days + 1


def error_body(
    error: CairnError,
    took_ms: float,
    results: list[Result] | None = None,
    *,
    statement: int | None = None,
    line: int | None = None,
    column: int | None = None,
) -> dict[str, Any]:
    """The contract's error JSON, the one place it is made: the results of the
    statements that ran, and where the failing one is (when known)."""
    err: dict[str, Any] = {"code": error.code, "message": error.message}
    if statement is not None:
        err.update(statement=statement, line=line, column=column)
    return {
        "status": "error",
        "results": [r.to_json() for r in results or []],
        "took": round(took_ms, 3),
        "error": err,
    }


def cairn_type(f: pa.Field) -> str:
    """The Cairn type name shown in `schema` for an Arrow field."""
    meta = f.metadata
    if meta and CAIRN_TYPE_KEY in meta:
        return meta[CAIRN_TYPE_KEY].decode()
    t = f.type
    simple = _SIMPLE.get(t.id)
    return simple if simple is not None else _type_name(t)


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "SMALLINT"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "INT"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return "REAL"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "TEXT"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "BYTES"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_list(t) or pa.types.is_struct(t) or pa.types.is_map(t):
        return "JSON"
    return str(t).upper()


# Types whose name needs no parameter, by Arrow type id (what `_type_name`
# says of them, looked up in one step: `cairn_type` runs for every column of
# every answer).
_SIMPLE: dict[int, str] = {
    t.id: _type_name(t)
    for t in (pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
              pa.uint16(), pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64(),
              pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.date32(),
              pa.date64())
}


def json_raw(text: str) -> msgspec.Raw | str:
    """A JSON column's text spliced into the answer as it is stored, not
    parsed and written again: json.loads kept the last of two equal keys,
    made `0.1000000000000000055511151231257827` 0.1 and `-0` 0, and failed on
    a deep value it had accepted. Spliced only when it passes the check a
    write makes (storage/jsoncheck.py `json_problem`): a query's column may
    hold any text (`CAST('1e999' AS JSON)`, a column named like a JSON column
    where the answer's columns cannot be told), and `1e999` went into the
    answer as a bare number strict readers refuse (Python's reads inf). Any
    other text is shown as a string."""
    if json_problem(text) is not None:
        return text
    return msgspec.Raw(text.strip())  # JSON: only JSON's blanks can be around it


def json_text(value: Any) -> str:
    """A JSON column's value as text (pgwire): a stored text as it is when it
    is JSON a write would take, else as a JSON string, as `json_raw` shows
    it over HTTP (`CAST('NaN' AS JSON)` went as NaN, which strict JSON
    readers refuse)."""
    if isinstance(value, str):
        return value if json_problem(value) is None else json.dumps(value)
    if isinstance(value, msgspec.Raw):
        return bytes(value).decode()
    return json.dumps(value, separators=(",", ":"), default=str)


def dumps_with_raw(body: Any) -> str:
    """json.dumps of an answer, JSON columns' text (`msgspec.Raw`) spliced in
    as msgspec.json.encode splices it: for an error's body (the results of
    the statements before it) and an answer msgspec refuses (text with a lone
    surrogate, which json.dumps writes as an escape)."""
    nonce = secrets.token_hex(8)
    raws: list[str] = []

    def mark(value: Any) -> str:
        if not isinstance(value, msgspec.Raw):
            raise TypeError(f"{type(value).__name__} is not JSON serializable")
        text = bytes(value).decode()
        if json_problem(text) is not None:  # held to json_raw's check wherever it came from
            return text
        raws.append(text)
        return f"\0{nonce}:{len(raws) - 1}\0"

    text = json.dumps(body, default=mark)
    if not raws:
        return text
    return re.sub(rf'"\\u0000{nonce}:(\d+)\\u0000"', lambda m: raws[int(m.group(1))], text)


def to_json_value(value: Any, cairn_t: str = "") -> Any:
    """One value as the contract wants it in JSON."""
    if value is None:
        return None
    if isinstance(value, bool | int | str) and cairn_t != "JSON":
        return value
    if cairn_t == "JSON" and isinstance(value, str):
        return json_raw(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        # isoformat: four digits of year before 1000 too (strftime's %Y gives
        # `999`, not ISO 8601), and milliseconds cut toward the past.
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time | dt.timedelta):
        return str(value)
    if isinstance(value, decimal.Decimal):
        # Scale 0 (e.g. DuckDB's sum() of BIGINT, a HUGEINT) is an exact integer.
        if cairn_t.endswith(",0)") and value.is_finite():
            return int(value)
        return format(value, "f")  # its scale, no exponent: str() gave 1E-10, 0E-10
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL, before the tuple it also is
        return iso_duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value
