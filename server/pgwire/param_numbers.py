"""A number parameter's text, read as its declared type the way PostgreSQL's
input functions read it (server/pgwire/types.py's text decoders)."""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class BadParameter(ValueError):
    """A parameter's bytes do not read as its type (22P02), or its value is out
    of every range Cairn has (`code` 22003, 22008)."""

    code = "22P02"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


def number_reader(cast: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        if not text.isascii():  # Python's int() and float() read '١٢٣' as 123; PostgreSQL does not
            raise BadParameter(f"invalid number parameter: {text[:40]!r}")
        try:
            return cast(text.strip())
        except BadParameter:
            raise
        except (ValueError, decimal.InvalidOperation):
            raise BadParameter(f"invalid number parameter: {text[:40]!r}") from None
    return read


def read_float8(text: str) -> float:
    """As PostgreSQL reads a float: 'Infinity' and 'NaN' as written, but a
    number past DOUBLE ('1e309', stored as Infinity) is 22003, as 1e-400 is."""
    value = float(text)
    if (math.isinf(value) and "inf" not in text.lower()) or (
            value == 0.0 and any(c in "123456789" for c in text.lower().split("e")[0])):
        raise BadParameter(f"{text[:40]!r} is out of range for type double precision", "22003")
    return value


@dataclass(frozen=True, slots=True)
class Float4:
    """A float4 parameter sent as text, kept as written: DuckDB's CAST of the
    text rounds it to REAL once, as the server's own CAST does (read into a
    double first it was rounded twice: '1.000000059604644775390624' became
    1.0000001, not 1.0). `text` is plain digits, or nan / inf / -inf."""

    text: str


_PLAIN_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def read_float4(text: str) -> Float4:
    value = read_float8(text)  # as a double: 22P02, or 22003 past it
    text = text.strip()
    if not math.isfinite(value):
        return Float4("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
    return Float4(text if _PLAIN_FLOAT.fullmatch(text) else repr(value))


def integer_reader(name: str, low: int, high: int) -> Callable[[str], int]:
    """A declared integer type's text, in its range as PostgreSQL's input reads
    it (22003): '70000' as int2 was the int4 70000, written into an INT column;
    an OID's negative text is its unsigned value, as oidin's. '1_000' is no
    integer to PostgreSQL 15 (Python's int() reads it)."""
    def read(text: str) -> int:
        value = int(text.replace("_", "!"))
        if not low <= value <= high:
            raise BadParameter(f'value "{text.strip()[:40]}" is out of range for type {name}',
                               "22003")
        return value + (1 << 32) if name == "oid" and value < 0 else value
    return read
