"""Number literals no answer and no column can take as DuckDB reads them:
one rule for every path, so a literal means one thing or is refused with the
same words wherever it is written (a query's tree and a write's SELECT, SET
and WHERE: `sandbox.check_fragment`; INSERT ... VALUES: `values.literal`,
which the parser's fast paths leave such a literal to; a DEFAULT:
`schema.column_from_def`).

- An integer past 2^127 - 1 (HUGEINT), which DuckDB types UHUGEINT up to
  2^128 - 1 (handed to Arrow as a 128-bit DECIMAL bit for bit: 2^128 - 1
  came back -1) and BIGNUM past it or below -2^127 (an answer showed its
  storage bytes, a JSON column stored them).
- A number of more than 38 digits without an exponent, a DOUBLE to DuckDB,
  that no DOUBLE holds (`1` and 309 zeros and `.0` reads inf, `0.` and 400
  zeros and `1` reads 0).

Until 2026-12-06 INSERT ... VALUES and a DEFAULT took such an integer
exactly (into TEXT its digits, into DOUBLE 1.2345678901234567e+49, into JSON
the number) while every query, UPDATE and INSERT ... SELECT refused it, so
no WHERE found the row by the literal it was written with."""

from __future__ import annotations

import math

from sqlglot import exp

HUGEINT_MAX = (1 << 127) - 1
_UHUGEINT_DIGITS = 39  # 2^128 - 1's: a number of more (no leading zeros) is past it


def number_problem(text: str) -> str | None:
    """What no column and no answer takes in a number literal written `text`
    (digits with at most one point and an optional sign: a negative literal
    is read whole, as DuckDB reads it, so -2^127 is a HUGEINT), or None."""
    body = text.lstrip("+-")
    if len(body) < 39 or "e" in body.lower():
        return None
    negative = text.startswith("-")
    shown = text if len(text) <= 40 else text[:37] + "..."
    if body.isdigit():
        digits = body.lstrip("0")
        if len(digits) <= _UHUGEINT_DIGITS:
            value = int(digits or "0")
            if value <= HUGEINT_MAX or (negative and value == HUGEINT_MAX + 1):
                return None
            past = "" if negative or value >> 128 else \
                "; DuckDB reads it as UHUGEINT, which no answer can carry"
        else:
            past = ""
        return (f"integer literal {shown} is past every integer type (HUGEINT holds -2^127 "
                f"to 2^127 - 1{past}): write it as text, in quotes, or as a DOUBLE, with an "
                "exponent (1.5e40)")
    digits = body.replace(".", "")
    if not digits.isdigit() or len(digits) <= 38:
        return None
    value_f = float(body)
    if math.isinf(value_f) or (value_f == 0.0 and digits.strip("0")):
        return f"numeric literal {shown} is out of range for DOUBLE"
    return None


def literal_problem(node: exp.Literal) -> str | None:
    """`number_problem` of a number literal in a tree (a `-` before it, its
    parent, is part of it: DuckDB reads `-170141183460469231731687303715884105728`
    as HUGEINT's least value)."""
    text = node.this
    if node.is_string or not isinstance(text, str) or len(text) < 39:
        return None
    return number_problem("-" + text if isinstance(node.parent, exp.Neg) else text)
