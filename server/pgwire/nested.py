"""A LIST, STRUCT or MAP answer column as the values of its JSON text over the
PostgreSQL protocol, each value inside written as the same value is at the top
of an answer.

The column went through `to_pylist()` and `json.dumps(default=str)`: a BLOB
came as Python's repr `"b'x'"`, an INTERVAL as `[0, 1, 0]`, a DECIMAL in E
notation (`"1.0E-8"`), a TIMESTAMP_NS (which `to_pylist` refuses) as the HTTP
answer's text cut to milliseconds. Here a bytea is `\\x` hex, an interval
PostgreSQL's text (`1 day`), a decimal plain digits with its scale, a
timestamp every digit it has, a REAL the fewest digits that read back as it
(`0.1`, not its double's `0.10000000149011612`), a float PostgreSQL's
`NaN`/`Infinity` (bare, they are not JSON), a BIT its text (`0101`, made so
in storage/bits.py). A MAP is a list of [key, value] pairs, as before."""

from __future__ import annotations

import decimal
import math
from typing import Any

import pyarrow as pa

from ..intervals import postgres_interval
from ..wide_dates import PER_SECOND, civil, time_texts
from .datetimes import Days
from .types import float4_text

_INT64_MAX = (1 << 63) - 1
_DAY_SECONDS = 86_400


def values(column: pa.ChunkedArray) -> list[Any]:
    """The column's values as JSON-ready Python values (None for a NULL)."""
    out: list[Any] = []
    for chunk in column.chunks:
        out.extend(_values(chunk))
    return out


def _values(arr: pa.Array) -> list[Any]:
    t = arr.type
    if pa.types.is_dictionary(t):
        return _values(arr.dictionary_decode())
    if pa.types.is_map(t):  # its entries: a list of structs (key, value)
        lists = pa.ListArray.from_arrays(arr.offsets, arr.values)
        pairs = [list(e.values()) for e in _values(lists.flatten())]
        return _split(lists, pairs, arr.is_null().to_pylist())
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _split(arr, _values(arr.flatten()), arr.is_null().to_pylist())
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        fields = [_values(f) for f in arr.flatten()]
        nulls = arr.is_null().to_pylist()
        return [None if nulls[i] else {n: f[i] for n, f in zip(names, fields, strict=True)}
                for i in range(len(arr))]
    if pa.types.is_timestamp(t):
        ints = arr.cast(pa.timestamp(t.unit)).cast(pa.int64()).to_pylist()
        zone = t.tz is not None
        return [None if v is None else timestamp_text(v, t.unit, zone) for v in ints]
    if pa.types.is_time(t):
        return time_texts(arr)
    if pa.types.is_union(t):  # each value from the child its type code names
        kids = {code: _values(arr.field(i)) for i, code in enumerate(t.type_codes)}
        at = arr.offsets.to_pylist() if t.mode == "dense" else range(len(arr))
        return [kids[c][i] for c, i in zip(arr.type_codes.to_pylist(), at, strict=True)]
    if pa.types.is_date32(t):
        return [None if v is None else Days(v).text()
                for v in arr.cast(pa.int32()).to_pylist()]
    if pa.types.is_float32(t):  # a REAL's shortest digits (0.1), not its double's
        return [None if v is None else _leaf(float(float4_text(v))) for v in arr.to_pylist()]
    return [_leaf(v) for v in arr.to_pylist()]


def _split(arr: pa.Array, flat: list[Any], nulls: list[bool]) -> list[Any]:
    """`flat` (the list array's flattened values) cut back into its lists."""
    if pa.types.is_fixed_size_list(arr.type):
        lengths = [0 if null else arr.type.list_size for null in nulls]
    else:
        lengths = [n or 0 for n in arr.value_lengths().to_pylist()]
    out: list[Any] = []
    at = 0
    for n, null in zip(lengths, nulls, strict=True):
        out.append(None if null else flat[at:at + n])
        at += n
    return out


def _leaf(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, pa.MonthDayNano):  # before the tuple it also is
        return postgres_interval(value.months, value.days, value.nanoseconds)
    return str(value)  # a date64, a time, a UUID


def timestamp_text(value: int, unit: str, zone: bool) -> str:
    """A timestamp (`unit`s since 1970-01-01) as PostgreSQL writes one, every
    digit of its fraction kept (`2024-01-01 00:00:00.123456789`), `+00` when it
    has a zone (the session is UTC), ` BC` for a year before 1."""
    if abs(value) == _INT64_MAX:
        return "infinity" if value > 0 else "-infinity"
    per = PER_SECOND[unit]
    seconds, frac = divmod(value, per)
    days, seconds = divmod(seconds, _DAY_SECONDS)
    year, month, day = civil(days)
    bc = ""
    if year <= 0:
        year, bc = 1 - year, " BC"
    text = (f"{year:04d}-{month:02d}-{day:02d} "
            f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")
    if frac:
        text += "." + f"{frac:0{len(str(per)) - 1}d}".rstrip("0")
    return text + ("+00" if zone else "") + bc
