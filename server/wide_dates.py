"""Dates and times outside Python's years 1-9999 as text, for the JSON answer.

DuckDB holds dates and timestamps far outside them (`DATE '20000-01-01'`,
`make_date(-5000, 1, 1)`, `'infinity'::TIMESTAMP`); pyarrow's `to_pylist`
raises OverflowError on one. Such a column is shown with each date or time
written out here, in the form the answer uses for the others (ISO 8601,
years past 9999 in full, years before 1 with a minus sign as ISO 8601's
expanded years do, year 0 being 1 BC) and `infinity` / `-infinity`. A
TIME_NS with digits below the microsecond (Python's time has none) is written
with all nine of them."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian
    (H. Hinnant's civil_from_days), for any year."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _year(year: int) -> str:
    return f"{year:04d}" if year >= 0 else f"-{-year:04d}"


def date_text(days: int) -> str:
    """A date32 value as text."""
    if abs(days) == _INT32_MAX:
        return "infinity" if days > 0 else "-infinity"
    year, month, day = civil(days)
    return f"{_year(year)}-{month:02d}-{day:02d}"


def timestamp_text(value: int, unit: str) -> str:
    """A timestamp value (in `unit`s since the epoch, UTC) as the answer shows
    one: milliseconds cut toward the past, and a Z."""
    if abs(value) == _INT64_MAX:
        return "infinity" if value > 0 else "-infinity"
    ms = value * 1000 // PER_SECOND[unit]
    days, ms = divmod(ms, 86_400_000)
    seconds, ms = divmod(ms, 1000)
    return (f"{date_text(days)}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
            f"{seconds % 60:02d}.{ms:03d}Z")


def time_text(value: int, unit: str) -> str:
    """A time of day (in `unit`s since midnight) as `str` of Python's time
    shows one (`12:00:00`, `12:00:00.500000`), nine digits when it has
    nanoseconds (`12:00:00.123456789`)."""
    per = PER_SECOND[unit]
    seconds, frac = divmod(value, per)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    ns = frac * 1_000_000_000 // per
    if ns % 1000:
        return f"{text}.{ns:09d}"
    return f"{text}.{ns // 1000:06d}" if ns else text


def time_texts(arr: pa.Array) -> list[str | None]:
    """A time32/time64 array's values as `time_text` writes them."""
    t = arr.type
    ints = arr.view(pa.int64() if pa.types.is_time64(t) else pa.int32()).to_pylist()
    return [None if v is None else time_text(v, t.unit) for v in ints]


def _texted(arr: pa.Array) -> pa.Array:
    """`arr` with every date, timestamp and time in it (also in lists,
    structs, maps and unions) as text."""
    t = arr.type
    if pa.types.is_time(t):
        return pa.array(time_texts(arr), pa.string())
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if pa.types.is_date64(t):
            arr, t = pc.cast(arr, pa.timestamp("ms")), pa.timestamp("ms")
        ints = arr.view(pa.int64() if pa.types.is_timestamp(t) else pa.int32()).to_pylist()
        if pa.types.is_timestamp(t):
            return pa.array([None if v is None else timestamp_text(v, t.unit) for v in ints],
                            pa.string())
        return pa.array([None if v is None else date_text(v) for v in ints], pa.string())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        cls = pa.ListArray if pa.types.is_list(t) else pa.LargeListArray
        return cls.from_arrays(arr.offsets, _texted(arr.values), mask=arr.is_null())
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return pa.StructArray.from_arrays([_texted(c) for c in arr.flatten()], names=names,
                                          mask=arr.is_null())
    if pa.types.is_map(t):
        return pa.MapArray.from_arrays(arr.offsets, _texted(arr.keys), _texted(arr.items),
                                       mask=arr.is_null())
    if pa.types.is_union(t):
        children = [_texted(arr.field(i)) for i in range(t.num_fields)]
        names, codes = [t.field(i).name for i in range(t.num_fields)], list(t.type_codes)
        if t.mode == "sparse":
            return pa.UnionArray.from_sparse(arr.type_codes, children, names, codes)
        return pa.UnionArray.from_dense(arr.type_codes, arr.offsets, children, names, codes)
    return arr


def pylist(column: pa.ChunkedArray) -> list[Any]:
    """`column.to_pylist()`, with dates and times Python cannot hold as text."""
    try:
        return column.to_pylist()
    except (OverflowError, ValueError):
        return [v for chunk in column.chunks for v in _texted(chunk).to_pylist()]
