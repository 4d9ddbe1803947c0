"""A parameter cast to a bare NUMERIC (`$1::numeric`, `$1::numeric[]`), as
PostgreSQL reads it: unconstrained. DuckDB reads a bare NUMERIC as
DECIMAL(18,3), so 1.2345 was compared as 1.235 and `DELETE … WHERE n =
$1::numeric` removed the wrong row. The value goes to DuckDB as the text of
its digits cast to the DECIMAL(38, s) that holds it (a float by its shortest
text, not its binary expansion: 1e23 is 1E+23), or to a DOUBLE where no
DECIMAL does (past 38 digits, NaN, infinity), never as text."""

from __future__ import annotations

import decimal
import re
from typing import Any

from . import arrays

_GAP = r"(?:\s|/\*(?:[^*]|\*(?!/))*\*/|--[^\n]*(?:\n|\Z))*"  # blanks and comments
CAST = re.compile(_GAP + r"::" + _GAP + r"(?:numeric|decimal)\b(?!" + _GAP + r"\()"
                  r"(" + _GAP + r"\[\s*\d*\s*\])?", re.IGNORECASE)


def rewrite(sql: str, end: int, value: Any) -> tuple[str, int] | None:
    """(the cast text, where it ends in `sql`) for the parameter ending at
    `end` when a bare NUMERIC cast follows it and `value` is a number (or a
    list of them); None to leave the text as it is (a NULL, a text)."""
    m = CAST.match(sql, end)
    if m is None:
        return None
    array = m.group(1) is not None
    if array != isinstance(value, arrays.PgArray):
        return None
    numbers = [_decimal(v) for v in (value if array else [value])]
    if any(d is False for d in numbers) or all(d is None for d in numbers):
        return None
    found = [d for d in numbers if isinstance(d, decimal.Decimal)]
    whole = max(_whole_digits(d) for d in found)
    scale = max(max(0, -int(d.as_tuple().exponent)) for d in found if d.is_finite()) if all(
        d.is_finite() for d in found) else None
    kind = (f"DECIMAL(38,{scale})" if scale is not None and whole + scale <= 38 else "DOUBLE")
    texts = [f"'{_text(d)}'" if isinstance(d, decimal.Decimal) else "NULL" for d in numbers]
    written = f"[{', '.join(texts)}]" if array else texts[0]
    return f"CAST({written} AS {kind}{'[]' if array else ''})", m.end()


def _decimal(v: Any) -> decimal.Decimal | None | bool:
    """A number as a Decimal (a float by its shortest text), None for NULL,
    False for anything else (left as it is)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | decimal.Decimal):
        return False
    return decimal.Decimal(repr(v)) if isinstance(v, float) else decimal.Decimal(v)


def _whole_digits(d: decimal.Decimal) -> int:
    if not d.is_finite():
        return 39  # no DECIMAL holds it
    _, digits, exponent = d.as_tuple()
    return max(len(digits) + int(exponent), 0)  # 0.x…: DECIMAL(38,38) holds it


def _text(d: decimal.Decimal) -> str:
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "-Infinity" if d < 0 else "Infinity"
    return format(d, "f")
