"""Dates and timestamps Python cannot hold, as PostgreSQL sends them.

DuckDB holds dates and times far outside Python's years 1-9999
(`'infinity'::TIMESTAMP`, `DATE '20000-01-01'`, `make_date(-5000, 1, 1)`, a
restored file's values); pyarrow's `to_pylist` raises OverflowError on one.
Such a column comes here as counts (`Days`, `Micros`), and each value goes out
as PostgreSQL sends it: in text `infinity` / `-infinity`, years past 9999 in
full, years before 1 as PostgreSQL writes them (`0044-03-15 BC`, year 0 being
1 BC); in binary days or microseconds since 2000-01-01, infinity as the
integer's max and -infinity as its min. A value past PostgreSQL's own range
(4713 BC to 5874897 AD for a date, to 294276 AD for a timestamp) has no
binary form: 22008 datetime_field_overflow. In text it is written all the
same, as the HTTP answer shows it."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..wide_dates import PER_SECOND, civil, pylist
from .errors import PgError

_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1
_DAY_US = 86_400_000_000
_EPOCH_2000_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01
# PostgreSQL's IS_VALID_DATE and IS_VALID_TIMESTAMP, from its epoch:
# 4714-11-24 BC (Julian day 0) up to 5874898-01-01 / 294277-01-01, excluded.
_DATE_MIN, _DATE_END = -2_451_545, 2_145_031_949
_TS_MIN, _TS_END = -211_813_488_000_000_000, 9_223_371_331_200_000_000


def _ymd(days: int) -> tuple[str, str]:
    """`YYYY-MM-DD` of a day count since 1970-01-01, and " BC" or ""."""
    year, month, day = civil(days)
    suffix = ""
    if year <= 0:
        year, suffix = 1 - year, " BC"
    return f"{year:04d}-{month:02d}-{day:02d}", suffix


@dataclass(frozen=True, slots=True)
class Days:
    """A date: days since 1970-01-01 (DuckDB's +-(2**31 - 1) are +-infinity)."""

    n: int

    def text(self, zone: bool = False) -> str:
        if abs(self.n) == _INT32_MAX:
            return "infinity" if self.n > 0 else "-infinity"
        date, bc = _ymd(self.n)
        return date + bc

    def binary(self) -> bytes:
        if abs(self.n) == _INT32_MAX:
            return struct.pack("!i", _INT32_MAX if self.n > 0 else -_INT32_MAX - 1)
        days = self.n - _EPOCH_2000_DAYS
        if not _DATE_MIN <= days < _DATE_END:
            raise PgError("22008", f"date out of range for PostgreSQL: {self.text()}")
        return struct.pack("!i", days)

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True, slots=True)
class Micros:
    """A timestamp: microseconds since 1970-01-01 UTC (+-(2**63 - 1): +-infinity)."""

    n: int

    def text(self, zone: bool = True) -> str:
        """PostgreSQL's text: the fraction without trailing zeros, `+00` for a
        timestamptz (the session is UTC), ` BC` last."""
        if abs(self.n) == _INT64_MAX:
            return "infinity" if self.n > 0 else "-infinity"
        days, us = divmod(self.n, _DAY_US)
        seconds, frac = divmod(us, 1_000_000)
        date, bc = _ymd(days)
        text = f"{date} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if frac:
            text += "." + f"{frac:06d}".rstrip("0")
        return text + ("+00" if zone else "") + bc

    def binary(self) -> bytes:
        if abs(self.n) == _INT64_MAX:
            return struct.pack("!q", _INT64_MAX if self.n > 0 else -_INT64_MAX - 1)
        us = self.n - _EPOCH_2000_DAYS * _DAY_US
        if not _TS_MIN <= us < _TS_END:
            raise PgError("22008", f"timestamp out of range for PostgreSQL: {self.text()}")
        return struct.pack("!q", us)

    def __str__(self) -> str:
        return self.text()


Wide = Days | Micros


def values(column: pa.ChunkedArray) -> list[Any]:
    """`column.to_pylist()`; a date or timestamp column holding a value Python
    cannot hold comes as `Days` or `Micros` (all of its values), a nested one
    with such values as the HTTP answer's text."""
    try:
        return column.to_pylist()
    except (OverflowError, ValueError):
        t = column.type
        if pa.types.is_date32(t):
            ints = column.cast(pa.int32()).to_pylist()
            return [None if v is None else Days(v) for v in ints]
        if pa.types.is_date64(t):
            ints = column.cast(pa.int64()).to_pylist()
            return [None if v is None else Days(v // 86_400_000) for v in ints]
        if pa.types.is_timestamp(t):
            ints = column.cast(pa.timestamp(t.unit)).cast(pa.int64()).to_pylist()
            return [None if v is None else Micros(_micros(v, t.unit)) for v in ints]
        return pylist(column)


def _micros(value: int, unit: str) -> int:
    if abs(value) == _INT64_MAX:  # infinity in every unit
        return value
    return value * 1_000_000 // PER_SECOND[unit]
