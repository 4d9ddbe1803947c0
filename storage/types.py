"""Cairn column types: how each is stored (Arrow), read (DuckDB) and checked.

A column is a plain dict, as kept in `TableSchema.columns`: name, type, params,
not_null, primary_key, has_default, default, plus `system` (a column Cairn adds)
and `since` (the schema version that added it, so a column dropped and added
again never shows the values of its predecessor)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import struct
from typing import Any

import pyarrow as pa

from catalog.errors import InvalidArgument

from . import doubles, timetext
from .jsoncheck import json_problem, kept_json_problem
from .spelling_lazy import cast_reads, decimal_cast, json_of, kept_decimal, number_sql, spelled
from .sql_text import sql_text

Column = dict[str, Any]

TYPE_NAMES = (
    "BOOLEAN", "SMALLINT", "INT", "BIGINT", "REAL", "DOUBLE", "DECIMAL",
    "TEXT", "BYTES", "DATE", "TIMESTAMP", "JSON",
)  # fmt: skip
ALIASES = {"INTEGER": "INT", "FLOAT": "REAL", "VARCHAR": "TEXT", "BLOB": "BYTES"}
INT_RANGES = {"SMALLINT": 2**15, "INT": 2**31, "BIGINT": 2**63}
DEFAULT_DECIMAL = (18, 3)

# Hidden columns: stored with every row, never shown by SELECT *.
SEQ = "_seq"  # the row version's sequence number: the newest version of a key wins
USER = "_user"  # the owner of a row of a USER table
OW = "_ow"  # this version overwrites an older version of its key (UPDATE, DELETE, re-INSERT)
HIDDEN = (SEQ, USER, OW)
ID, UPDATED, DELETED = "_id", "_updated", "_deleted"

MAX_TEXT_LENGTH = 2**31 - 1  # TEXT(n); also the bound of any type parameter a manifest holds


def canonical_type(name: str, params: tuple[int, ...] | list[int], column: str) -> tuple[str, list[int]]:
    """Check a declared type; INVALID_ARGUMENT names the column and the type."""
    upper = ALIASES.get(name.upper(), name.upper())
    params = list(params or ())
    shown = name + (f"({', '.join(map(str, params))})" if params else "")
    if upper not in TYPE_NAMES:
        raise InvalidArgument(
            f"Column '{column}' has unknown type {shown}; types are {', '.join(TYPE_NAMES)}"
        )
    if upper == "DECIMAL":
        if len(params) > 2:
            raise InvalidArgument(f"Column '{column}': DECIMAL takes (precision, scale), not {shown}")
        p = params[0] if params else DEFAULT_DECIMAL[0]
        s = params[1] if len(params) > 1 else (0 if params else DEFAULT_DECIMAL[1])
        if not 1 <= p <= 38 or not 0 <= s <= p:
            raise InvalidArgument(
                f"Column '{column}': {shown} needs 1 <= precision <= 38 and 0 <= scale <= precision"
            )
        return upper, [p, s]
    if upper == "TEXT":
        if len(params) > 1 or (params and not 1 <= params[0] <= MAX_TEXT_LENGTH):
            raise InvalidArgument(
                f"Column '{column}': {shown} needs one length from 1 to {MAX_TEXT_LENGTH}")
        return upper, params
    if params:
        raise InvalidArgument(f"Column '{column}': type {upper} takes no parameters ({shown})")
    return upper, []


def type_label(col: Column) -> str:
    """DECIMAL(10,2), TEXT(20), BIGINT, ..."""
    params = col.get("params") or []
    return col["type"] + (f"({','.join(map(str, params))})" if params else "")  # type: ignore[no-any-return]


def arrow_type(col: Column) -> pa.DataType:
    t, params = col["type"], col.get("params") or []
    if t == "DECIMAL":
        return pa.decimal128(*(params or DEFAULT_DECIMAL))
    return {
        "BOOLEAN": pa.bool_(), "SMALLINT": pa.int16(), "INT": pa.int32(),
        "BIGINT": pa.int64(), "REAL": pa.float32(), "DOUBLE": pa.float64(),
        "TEXT": pa.string(), "BYTES": pa.binary(), "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"), "JSON": pa.string(),
    }[t]  # fmt: skip


def duckdb_type(col: Column) -> str:
    t, params = col["type"], col.get("params") or []
    if t == "DECIMAL":
        p, s = params or DEFAULT_DECIMAL
        return f"DECIMAL({p},{s})"
    return {"INT": "INTEGER", "TEXT": "VARCHAR", "BYTES": "BLOB", "JSON": "VARCHAR"}.get(t, t)  # type: ignore[return-value]


def arrow_field(col: Column) -> pa.Field:
    meta = {b"cairn.type": type_label(col).encode()}
    return pa.field(col["name"], arrow_type(col), nullable=not col.get("not_null"), metadata=meta)


def _bad(col: Column, row: int | None, value: Any, why: str = "") -> InvalidArgument:
    where = f" in row {row}" if row is not None else ""
    shown = sql_text(value, typed=True)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    head = f"Column '{col['name']}' ({type_label(col)}){where}"
    if why == "is out of range for":  # the value, then what it does not fit
        return InvalidArgument(f"{head}: {shown} is out of range for {type_label(col)}")
    return InvalidArgument(f"{head}: {why or 'cannot take'} {shown}")


def _parse_timestamp(col: Column, row: int | None, text: str) -> dt.datetime:
    """Text as DuckDB's cast to TIMESTAMP reads it (what a query's WHERE
    compares with). That cast drops a UTC offset ('12:00+05:30' is 12:00), so
    the written text would find another row than it names: a non-zero offset
    is refused (it was converted to UTC, 06:30, which no query with the same
    text found); 'Z' and '+00:00' say UTC and are read."""
    value = timetext.time_of(text)
    if value is None:  # '20240601', '2024-W23-6': no form the CAST reads (timetext.py)
        raise _bad(col, row, text, f"takes a date or time written {timetext.FORM}, not")
    if value.tzinfo is not None:
        if value.utcoffset():
            raise _bad(col, row, text, "takes a time with a UTC offset only in UTC (write it "
                                       "in UTC, or typed: TIMESTAMPTZ '...'), not")
        value = value.replace(tzinfo=None)
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    """A typed TIMESTAMPTZ (a query's, a pgwire parameter's) as UTC without
    a zone: DuckDB's cast to TIMESTAMP or DATE with TimeZone UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def coerce(col: Column, value: Any, row: int | None = None) -> Any:
    """`value` as the Python value stored for `col`, or INVALID_ARGUMENT naming
    the column and the row (1-based)."""
    if value is None:
        if col.get("not_null"):
            raise _bad(col, row, None, "is NOT NULL and cannot take")
        return None
    t = col["type"]
    try:
        if t in _READ_AS_DOUBLE and isinstance(value, decimal.Decimal) and doubles.reads_as_double(value):
            number = doubles.double_of(value)  # `1e5`, 39+ digits: DuckDB's DOUBLE of it
            if number is None:
                raise _bad(col, row, value, "is out of range for")
            value = number
        if t == "BOOLEAN":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "t", "f"):
                return value.lower() in ("true", "t")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise _bad(col, row, value)
        if t in INT_RANGES:
            if isinstance(value, bool):
                raise _bad(col, row, value)
            if isinstance(value, float | decimal.Decimal):
                if not (math.isfinite(value) and value == int(value)):
                    raise _bad(col, row, value, "needs a whole number, not")
                value = int(value)
            elif isinstance(value, str):
                value = int(_ascii(value).strip())
            if not isinstance(value, int):
                raise _bad(col, row, value)
            bound = INT_RANGES[t]
            if not -bound <= value < bound:
                raise _bad(col, row, value, "is out of range for")
            return value
        if t in ("REAL", "DOUBLE"):
            if isinstance(value, bool):
                raise _bad(col, row, value)
            if isinstance(value, int | float | decimal.Decimal | str):
                number = float(_ascii(value) if isinstance(value, str) else value)
                if (_real_overflow(number) or _real_underflow(number)
                        if isinstance(value, float) and t == "REAL" else
                        not isinstance(value, float) and _out_of_range(t, value, number)):
                    raise _bad(col, row, value, "is out of range for")
                if t == "REAL" and not isinstance(value, float):
                    return _real_of(value, number)
                return number
            raise _bad(col, row, value)
        if t == "DECIMAL":
            if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal | str):
                raise _bad(col, row, value)
            p, s = col.get("params") or DEFAULT_DECIMAL
            if isinstance(value, float):  # as DuckDB's CAST, not through the shortest text
                d = doubles.decimal_of(value, p, s)
                if d is None:
                    raise _bad(col, row, value, "is out of range for")
                return d
            if isinstance(value, str) and cast_reads(value):  # '1e-9': as DuckDB's CAST (or not)
                value = decimal_cast(value, p, s)
            d = decimal.Decimal(_ascii(str(value)).strip()).quantize(
                decimal.Decimal(1).scaleb(-s), context=_DECIMALS)
            if not d.is_finite() or len(d.as_tuple().digits) > p and d != 0:
                raise _bad(col, row, value, "is out of range for")
            return d
        if t == "TEXT":
            if isinstance(value, bytes):
                raise _bad(col, row, value)
            text = value if isinstance(value, str) else _text_of(value)
            params = col.get("params") or []
            if params and len(text) > params[0]:
                raise _bad(col, row, value, f"is longer than {params[0]} characters:")
            return text
        if t == "BYTES":
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            if isinstance(value, str):
                return _blob_of(col, row, value)
            raise _bad(col, row, value)
        if t == "DATE":
            if isinstance(value, dt.datetime):
                return _utc(value).date()
            if isinstance(value, dt.date):
                return value
            if isinstance(value, str):
                day = timetext.date_of(value)
                return day if day is not None else _parse_timestamp(col, row, value).date()
            raise _bad(col, row, value)
        if t == "TIMESTAMP":
            if isinstance(value, dt.datetime):
                return _utc(value)
            if isinstance(value, dt.date):
                return dt.datetime(value.year, value.month, value.day)
            if isinstance(value, str):
                return _parse_timestamp(col, row, value)
            raise _bad(col, row, value)
        if t == "JSON":
            text = value if isinstance(value, str) else json_of(value)
            problem = json_problem(text)
            if problem is not None:
                raise _bad(col, row, value, f"{problem}:")
            return text
    except InvalidArgument:
        raise
    except (ValueError, TypeError, ArithmeticError, OverflowError):
        raise _bad(col, row, value) from None
    raise _bad(col, row, value)


# Room for DECIMAL(38,s) (the default context has 28 digits: quantize raised
# on a valid 29-38 digit value); a value of more digits is refused after it.
# Ties round away from zero, as DuckDB's CAST does (and PostgreSQL): with the
# default half-even, 2.5 was stored 2 in a DECIMAL(18,0), the server's own
# `CAST(2.5 AS DECIMAL(18,0))` 3.
_DECIMALS = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_UP)

# Number columns, which take a literal DuckDB reads as a DOUBLE as that DOUBLE
# (storage/doubles.py); TEXT and JSON spell its text as DuckDB does.
_READ_AS_DOUBLE = frozenset([*INT_RANGES, "REAL", "DOUBLE", "DECIMAL"])


_NOT_CAST_BLANKS = re.compile("[\x1c-\x1f]")


def _ascii(text: str) -> str:
    """Text that is to be read as a number: Python's int(), float() and Decimal() read other
    scripts' digits ('\u0661\u0662\u0663' as 123), which PostgreSQL and DuckDB refuse, and
    take '\x1c'-'\x1f' around a number as blanks, which DuckDB's CAST does not ('\x1c5'
    was stored 5, and its own literal in a WHERE was a Conversion Error)."""
    if not text.isascii() or _NOT_CAST_BLANKS.search(text):
        raise ValueError("not a number")
    return text


def _out_of_range(t: str, value: int | decimal.Decimal | str, number: float) -> bool:
    """Whether a written number (an int, a literal's Decimal, a string) lost
    itself on the way to a float: 1e309 became inf, 1e-400 became 0, or a REAL
    beyond float32. 'NaN' and 'Infinity' as text stay what they say."""
    if isinstance(value, str):
        value = decimal.Decimal(value.strip())
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        return False
    if not math.isfinite(number) or (number == 0.0 and value != 0):
        return True
    return t == "REAL" and (_real_overflow(number) or _real_underflow(number))


def _as_real(number: float) -> float:
    """`number` rounded to float32 as it is stored (to nearest, ties to even):
    REAL's largest value as printed, `3.4028235e+38`, is a little past it as a
    double and rounds back to it; infinity for what rounds past it."""
    try:
        return float(struct.unpack("f", struct.pack("f", number))[0])
    except OverflowError:  # some Pythons raise, others give inf
        return math.inf


def _real_of(value: int | decimal.Decimal | str, number: float) -> float:
    """A written number (`number` is it rounded to a double) rounded once to
    REAL, as DuckDB's CAST does: rounding the double again to float32 is off
    when the double fell on a tie of two float32s (1.000000059604644775390625
    00000001 became 1.0, the CAST gives 1.0000001)."""
    real = _as_real(number)
    if real == number or not math.isfinite(real):
        return real
    bits = struct.unpack("I", struct.pack("f", real))[0]
    other = float(struct.unpack("f", struct.pack("I", bits + (1 if abs(number) > abs(real)
                                                              else -1)))[0])
    if (real + other) / 2 != number:
        return real  # not a tie: the double rounds to REAL as the number does
    exact = decimal.Decimal(value.strip() if isinstance(value, str) else value)
    if exact == decimal.Decimal(number):
        return real  # a true tie: to even, as `_as_real` did
    return max(real, other) if exact > decimal.Decimal(number) else min(real, other)


def _real_overflow(number: float) -> bool:
    """Whether a finite DOUBLE (a query's value) becomes infinity as a REAL."""
    return math.isfinite(number) and not math.isfinite(_as_real(number))


def _real_underflow(number: float) -> bool:
    """Whether a number other than zero becomes zero as a REAL (1e-46)."""
    return number != 0.0 and _as_real(number) == 0.0


_BLOB_ESCAPE = re.compile(r"\\x[0-9A-Fa-f]{2}")


def _blob_of(col: Column, row: int | None, text: str) -> bytes:
    """Text as DuckDB's cast to BLOB reads it (as `WHERE b = '...'` does): ASCII characters
    are themselves, `\\xHH` is the byte HH, and any other backslash or character is refused,
    as the cast does (`value.encode()` stored '\\xFF' as 4 bytes no query's text found)."""
    if "\\" not in text and text.isascii():
        return text.encode()
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if not _BLOB_ESCAPE.match(text, i):
                raise _bad(col, row, text, "takes a backslash only as \\xHH (a byte in hex), "
                                           "not in")
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
            continue
        if not ch.isascii():
            raise _bad(col, row, text, "takes characters past ASCII only as \\xHH bytes "
                                       "(UTF-8 written in hex), not in")
        out.append(ord(ch))
        i += 1
    return bytes(out)


def _text_of(value: Any) -> str:
    """A value as DuckDB's CAST(... AS VARCHAR) spells it: a number (`1e5` is
    a DOUBLE to it, '100000.0'; INSERT ... SELECT and DEFAULT gave that, a
    literal '1E+5'), a time ('12:00:00.5', not '12:00:00.500000')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        zone = "+00" if value.tzinfo is not None else ""
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if zone else value
        text = naive.isoformat(sep=" ")
        return (text.rstrip("0") if naive.microsecond else text) + zone
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return spelled(number_sql(value), "VARCHAR")
    return str(value)


NUMBERS = ("DECIMAL", "REAL", "DOUBLE")


def stored_default(col: Column, value: Any) -> Any:
    """A DEFAULT as the catalog keeps it (JSON, read back without Decimals),
    meaning what `value`, the column's value of it, means: a number written
    with a point or exponent (a Decimal) is kept as its exact text in a
    DECIMAL, REAL or DOUBLE column (a float rounded DECIMAL(38,10) DEFAULT
    12345678901234567890.1234567891 to 12345678901234567000) and as JSON text
    in a JSON one, whole in an integer column, and as the text it gave in a
    TEXT one."""
    default = col.get("default")
    if col["type"] == "BYTES" and isinstance(value, bytes):
        # Kept as the text whose UTF-8 the bytes are: what a BYTES default kept
        # as text has always meant (`stored_value`), whatever the rules of the
        # text a DEFAULT is written in.
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"Column '{col['name']}' (BYTES): a DEFAULT is kept as text, so its bytes "
                "must be UTF-8") from None
    if not isinstance(default, decimal.Decimal):
        return default
    if col["type"] in ("DECIMAL", "REAL") and doubles.reads_as_double(default):
        # DuckDB's DOUBLE of it, as the column took it: its own text reads exactly.
        return format(value, "f") if isinstance(value, decimal.Decimal) else repr(_as_real(value))
    if col["type"] in NUMBERS:
        return str(default)
    # JSON: the text CAST(<literal> AS JSON) gives, as INSERT ... VALUES stores
    # it (1e3 is 1000.0, 1.50 is 1.5); this kept Decimal text (1E+3, 1.50),
    # which a default kept so still means (`stored_value`).
    return value


def shown_default(col: Column) -> Any:
    """A column's DEFAULT as DESCRIBE and pgwire's catalogs show it: a number
    column's number (kept as text) as a Decimal, exact as written."""
    default = col.get("default") if col.get("has_default") else None
    if col["type"] in NUMBERS and isinstance(default, str | decimal.Decimal):
        try:
            number = decimal.Decimal(default)
        except ArithmeticError:
            return default
        if number.is_finite():
            return number
    return default


def default_json(col: Column) -> str:
    """`shown_default` as JSON text (DESCRIBE's default_value): a number as a number."""
    default = shown_default(col)
    return str(default) if isinstance(default, decimal.Decimal) else json.dumps(default)


def default_value(col: Column) -> Any:
    """The stored value a column takes when a row does not give one."""
    if not col.get("has_default"):
        return None
    return stored_value(col, col.get("default"))


def stored_value(col: Column, default: Any) -> Any:
    """A DEFAULT as the catalog or a manifest keeps it, as the value it stands
    for: `coerce`'s, except where the rules for written text changed after
    the text was kept (2026-12-05), so a table or backup made before still
    means what it meant: a BYTES default is its text's UTF-8 (`stored_default`
    keeps it so), a TIMESTAMP or DATE default with a UTC offset is that
    instant in UTC (a written one is refused now, `_parse_timestamp`), a REAL
    default that REAL holds only as zero (1e-46) is that zero, as it was
    stored, and a JSON default an older write check took (a lone surrogate
    escape, nesting past 512: `kept_json_problem`) is its text as kept."""
    if col["type"] == "REAL" and isinstance(default, float) and _real_underflow(default):
        return _as_real(default)
    if col["type"] == "JSON" and isinstance(default, str) and json_problem(default) is not None \
            and kept_json_problem(default) is None:
        return default
    if isinstance(default, str):
        if col["type"] == "BYTES":
            default = default.encode()
        elif col["type"] == "DECIMAL" and cast_reads(default):  # '1E-9': as it was kept
            default = kept_decimal(default)
        elif col["type"] in ("TIMESTAMP", "DATE", *INT_RANGES, *NUMBERS):
            try:
                return coerce(col, default)
            except InvalidArgument:
                if col["type"] not in ("TIMESTAMP", "DATE"):
                    return coerce(col, default.strip())  # '\x1c5': str.strip() took it
                parsed = timetext.kept_time(default)
                if parsed is None:
                    raise
                return coerce(col, parsed)
    return coerce(col, default)


def sql_literal(col: Column, value: Any) -> str:
    """`value` (already coerced) as a DuckDB literal of the column's type."""
    if value is None:
        return f"CAST(NULL AS {duckdb_type(col)})"
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, decimal.Decimal):
        # Quoted, plain: DuckDB reads a bare literal of 39+ digits (or 1.2E-8) as a DOUBLE.
        text = f"'{format(value, 'f')}'"
    elif isinstance(value, int | float):
        text = repr(value)
        if isinstance(value, float) and (not math.isfinite(value)
                                         or value == 0 and math.copysign(1, value) < 0):
            text = f"'{value}'"  # DuckDB reads -0.0 as a DECIMAL 0 negated: +0.0
    elif isinstance(value, bytes):
        text = "'" + "".join(f"\\x{b:02x}" for b in value) + "'"
    elif isinstance(value, dt.datetime | dt.date):
        text = f"'{value.isoformat()}'"
    else:
        text = "'" + str(value).replace("'", "''") + "'"
    return f"CAST({text} AS {duckdb_type(col)})"


def describe_column(col: Column) -> dict[str, Any]:
    """A column as shown by DESCRIBE and `system.table_schemas.columns`."""
    return {
        "name": col["name"],
        "type": type_label(col),
        "not_null": bool(col.get("not_null")),
        "primary_key": bool(col.get("primary_key")),
        "default": col.get("default") if col.get("has_default") else None,
        "system": bool(col.get("system")),
    }
