"""Numbers DuckDB reads as a DOUBLE, and its cast of a DOUBLE to a DECIMAL.

DuckDB reads a number literal written with an exponent (`1e5`), or with more
than 38 digits (leading zeros counted: `0.` and 38 nines is 39), as a DOUBLE,
not a DECIMAL: a query's UPDATE SET, INSERT ... SELECT and CAST of it go
through that DOUBLE. A literal Cairn reads itself (storage/values.literal's
NumberText, the fast path's and a DEFAULT's sqlgrammar.ast.ExponentNumber,
each a Decimal carrying its text in `sql`) is read the same way, and a DOUBLE
goes into a DECIMAL(p,s) as DuckDB's cast puts it: the double times 10^s in
double arithmetic, rounded half away from zero (0.1234...5678 of 39 digits is
0.12345678901234567525491324606797053952 in a DECIMAL(38,38), not the
literal's digits, nor the double's shortest text 0.12345678901234568)."""

from __future__ import annotations

import decimal
import math
from typing import Any

MAX_DECIMAL_WIDTH = 38  # a plain number literal of more digits is a DOUBLE to DuckDB

# DuckDB's table of powers of ten as doubles (C++ literals: correctly rounded).
_POWERS = [float(f"1e{i}") for i in range(MAX_DECIMAL_WIDTH + 2)]
_EXACT = decimal.Context(prec=80)


def reads_as_double(value: Any) -> bool:
    """Whether `value` is a literal (a Decimal with its text in `sql`) that
    DuckDB reads as a DOUBLE."""
    sql = getattr(value, "sql", None)
    if not isinstance(sql, str):
        return False
    return "e" in sql.lower() or sum(ch.isdigit() for ch in sql) > MAX_DECIMAL_WIDTH


def double_of(value: decimal.Decimal) -> float | None:
    """The DOUBLE DuckDB reads such a literal as (correctly rounded, as its
    parser rounds the text); None if no DOUBLE holds it (inf, or 0 for a
    number that is not 0)."""
    number = float(value)
    if not math.isfinite(number) or (number == 0.0 and value != 0):
        return None
    return number


def decimal_of(number: float, p: int, s: int) -> decimal.Decimal | None:
    """DuckDB's CAST(number AS DECIMAL(p,s)), or None where it refuses (out of
    range, NaN, infinity)."""
    scaled = number * _POWERS[s]
    if not math.isfinite(scaled):
        return None
    whole = decimal.Decimal(scaled).to_integral_value(rounding=decimal.ROUND_HALF_UP)
    if abs(whole) >= _POWERS[p]:
        return None
    return (whole or decimal.Decimal(0)).scaleb(-s, context=_EXACT)
