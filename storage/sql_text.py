"""A value as SQL writes it, for a message: `NULL`, `TRUE`, `0.000000015`,
`'it''s'`, `'\\x01'::BLOB`. Messages showed Python's forms (`None`, `True`,
`1.5E-8`, `"it's"`, `b'\\x01'`, `datetime.date(2024, 1, 1)`)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa


def sql_text(value: Any, typed: bool = False) -> str:
    """`value` as SQL text; a date or time `typed` as a literal of its type
    (`DATE '2024-01-01'`), else as its text alone (as a key is shown)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, float) and 1e-20 < abs(value) < 1e20:  # plain: 0.000000015, not 1.5e-08
        return format(decimal.Decimal(repr(value)), "f")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "'" + "".join(f"\\x{b:02X}" for b in bytes(value)) + "'::BLOB"
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL (a tuple to Python)
        return ("INTERVAL " if typed else "") + "'" + _interval(value) + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_text(v, typed) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_text(str(k))}: {sql_text(v, typed)}"
                               for k, v in value.items()) + "}"
    kind = ""
    if isinstance(value, dt.datetime):
        text, kind = value.isoformat(sep=" "), "TIMESTAMPTZ " if value.tzinfo else "TIMESTAMP "
    elif isinstance(value, dt.date | dt.time):
        text, kind = value.isoformat(), "TIME " if isinstance(value, dt.time) else "DATE "
    else:
        text = str(value)
    return (kind if typed else "") + "'" + text.replace("'", "''") + "'"


def _interval(value: Any) -> str:
    """An INTERVAL as DuckDB's text of it: `1 year -2 months 3 days 04:05:06.7`."""
    months, days, nanos = value.months, value.days, value.nanoseconds
    years = int(months / 12)  # toward zero, as DuckDB: -14 months is -1 year -2 months
    parts = [f"{n} {name}{'' if abs(n) == 1 else 's'}"
             for n, name in ((years, "year"), (months - 12 * years, "month"), (days, "day")) if n]
    if nanos or not parts:
        hours, rest = divmod(abs(nanos) // 1000, 3_600_000_000)
        minutes, rest = divmod(rest, 60_000_000)
        seconds, micros = divmod(rest, 1_000_000)
        fraction = f".{micros:06d}".rstrip("0") if micros else ""
        parts.append(f"{'-' if nanos < 0 else ''}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}")
    return " ".join(parts)


# A Python type an option takes, as SQL calls its values.
KINDS: dict[type, str] = {str: "string", int: "whole number", bool: "boolean (TRUE or FALSE)",
                          float: "number"}


def kind_of(value: Any) -> str:
    """What `value` is, in SQL's words, for a message that must not show it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | decimal.Decimal):
        return "a number"
    return "a string" if isinstance(value, str) else "a value of another type"
