"""Cairn types <-> PostgreSQL type OIDs, and values in both wire formats.

Results: a value is encoded for the column's declared OID (converting where the
driver was promised another width, e.g. an int4 value in an int8 column).
Parameters: text or binary bytes of a known OID become Python values, which
`params.py` turns into typed SQL literals."""

from __future__ import annotations

import base64
import codecs
import datetime as dt
import decimal
import json
import math
import re
import struct
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..intervals import postgres_interval
from ..result import json_text
from . import arrays
from .datetimes import Days, Micros, Wide
from .param_numbers import BadParameter, integer_reader, number_reader, read_float4, read_float8
from .param_numbers import Float4 as Float4

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT2VECTOR, INT4, REGPROC, TEXT, OID = (
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26)
JSON, FLOAT4, FLOAT8, UNKNOWN, VARCHAR, BPCHAR = 114, 700, 701, 705, 1043, 1042
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC = 1082, 1083, 1114, 1184, 1186, 1700
OIDVECTOR, REGCLASS, REGTYPE, UUID, JSONB, TEXT_ARRAY, CHAR_ARRAY = (
    30, 2205, 2206, 2950, 3802, 1009, 1002)

# oid -> (typname, typlen) as pg_type shows them.
TYPES: dict[int, tuple[str, int]] = {
    BOOL: ("bool", 1), BYTEA: ("bytea", -1), CHAR: ("char", 1), NAME: ("name", 64),
    INT8: ("int8", 8), INT2: ("int2", 2), INT2VECTOR: ("int2vector", -1), INT4: ("int4", 4),
    REGPROC: ("regproc", 4), TEXT: ("text", -1), OID: ("oid", 4), JSON: ("json", -1),
    FLOAT4: ("float4", 4), FLOAT8: ("float8", 8), UNKNOWN: ("unknown", -2),
    BPCHAR: ("bpchar", -1), VARCHAR: ("varchar", -1), DATE: ("date", 4), TIME: ("time", 8),
    TIMESTAMP: ("timestamp", 8), TIMESTAMPTZ: ("timestamptz", 8), INTERVAL: ("interval", 16),
    NUMERIC: ("numeric", -1), OIDVECTOR: ("oidvector", -1), REGCLASS: ("regclass", 4),
    REGTYPE: ("regtype", 4), UUID: ("uuid", 16), JSONB: ("jsonb", -1),
    TEXT_ARRAY: ("_text", -1), CHAR_ARRAY: ("_char", -1),
}  # fmt: skip
# PostgreSQL's array type of each type above (pg_type's typarray; unknown has
# none): pg_type lists each as `_name`, its typelem the type (relations.py).
ARRAYS: dict[int, int] = {
    BOOL: 1000, BYTEA: 1001, CHAR: CHAR_ARRAY, NAME: 1003, INT8: 1016, INT2: 1005,
    INT2VECTOR: 1006, INT4: 1007, REGPROC: 1008, TEXT: TEXT_ARRAY, OID: 1028, OIDVECTOR: 1013,
    JSON: 199, FLOAT4: 1021, FLOAT8: 1022, BPCHAR: 1014, VARCHAR: 1015, DATE: 1182, TIME: 1183,
    TIMESTAMP: 1115, TIMESTAMPTZ: 1185, INTERVAL: 1187, NUMERIC: 1231, REGCLASS: 2210,
    REGTYPE: 2211, UUID: 2951, JSONB: 3807,
}  # fmt: skip
# Types PostgreSQL stores as fixed arrays of another, not named `_…`: their typelem.
FIXED_ARRAYS = {NAME: CHAR, INT2VECTOR: INT2, OIDVECTOR: OID}

_BY_CAIRN = {
    "BOOLEAN": BOOL, "SMALLINT": INT2, "INT": INT4, "BIGINT": INT8, "REAL": FLOAT4,
    "DOUBLE": FLOAT8, "TEXT": TEXT, "BYTES": BYTEA, "DATE": DATE, "TIMESTAMP": TIMESTAMPTZ,
    "JSON": JSON,
}  # fmt: skip


def oid_of(cairn_type: str) -> int:
    """The OID a Cairn type name (BIGINT, DECIMAL(10,2), TEXT(20), ...) is sent as."""
    base = cairn_type.split("(", 1)[0].strip().upper()
    if base == "DECIMAL":
        return NUMERIC
    return _BY_CAIRN.get(base, TEXT)


def type_size(oid: int) -> int:
    return TYPES.get(oid, ("", -1))[1]


def pg_type_name(cairn_type: str) -> str:
    """How `format_type` shows a Cairn type: bigint, numeric(10,2), text, ..."""
    base, _, rest = cairn_type.partition("(")
    names = {
        "BOOLEAN": "boolean", "SMALLINT": "smallint", "INT": "integer", "BIGINT": "bigint",
        "REAL": "real", "DOUBLE": "double precision", "TEXT": "text", "BYTES": "bytea",
        "DATE": "date", "TIMESTAMP": "timestamp with time zone", "JSON": "json",
        "DECIMAL": "numeric",
    }  # fmt: skip
    name = names.get(base.strip().upper(), base.lower())
    if rest and base.strip().upper() == "DECIMAL":
        return f"numeric({rest.rstrip(')').replace(' ', '')})"
    if rest and base.strip().upper() == "TEXT":
        return f"character varying({rest.rstrip(')')})"
    return name


# --- results -------------------------------------------------------------------------

EPOCH = dt.datetime(2000, 1, 1)
EPOCH_DATE = dt.date(2000, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = str(value).strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    return _as_datetime(parsed) if parsed.tzinfo else parsed


def _as_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    return decimal.Decimal(str(value))


def _float_text(value: Any) -> str:
    f = float(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f)


def float4_text(value: Any) -> str:
    """A REAL as PostgreSQL writes it (extra_float_digits 1 to 3): the fewest
    digits that read back as the same float4: 0.1, not 0.10000000149011612
    (that float4's shortest double, which psycopg read as a different float)."""
    f = float(value)
    if not math.isfinite(f) or abs(f) > 3.4028234663852886e38:  # not a finite float4
        return _float_text(f)
    single = _single(f)
    for digits in (6, 7, 8):  # 6: every float4 of 6 digits or fewer (a float4 has 6 to 9)
        text = f"{f:.{digits}g}"
        if _single(float(text)) == single:
            return text
    return f"{f:.9g}"


def _single(f: float) -> float:
    return float(struct.unpack("!f", struct.pack("!f", f))[0])


def _ts_text(value: Any) -> str:
    d = _as_datetime(value)
    text = d.isoformat(sep=" ")
    return text + "+00"


def _date_text(value: Any) -> str:
    if isinstance(value, Wide):
        return value.text(zone=False)
    return (value if isinstance(value, dt.date) else _as_datetime(value)).isoformat()[:10]


def _ts_binary(value: Any) -> bytes:
    if isinstance(value, Micros):
        return value.binary()
    return struct.pack("!q", (_as_datetime(value) - EPOCH) // _MICROSECOND)


def _bool_text(value: Any) -> str:
    if isinstance(value, str):
        return "t" if value.lower() in ("t", "true", "1") else "f"
    return "t" if value else "f"


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return base64.b64decode(value)  # a JSON-form result holds base64


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL (it went as `MonthDayNano(…)`)
        return postgres_interval(value.months, value.days, value.nanoseconds)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, dt.datetime):
        return _ts_text(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)


_TEXT_ENCODERS: dict[int, Callable[[Any], str]] = {
    BOOL: _bool_text,
    INT2: lambda v: str(int(v)), INT4: lambda v: str(int(v)), INT8: lambda v: str(int(v)),
    OID: lambda v: str(int(v)),
    FLOAT4: float4_text, FLOAT8: _float_text,
    NUMERIC: lambda v: format(_as_decimal(v), "f"),
    BYTEA: lambda v: "\\x" + _bytes_of(v).hex(),
    DATE: lambda v: _date_text(v),
    TIMESTAMPTZ: lambda v: v.text(zone=True) if isinstance(v, Wide) else _ts_text(v),
    TIMESTAMP: lambda v: (v.text(zone=False) if isinstance(v, Wide)
                          else _as_datetime(v).isoformat(sep=" ")),
    JSON: json_text,
}  # fmt: skip


def _numeric_binary(value: Any) -> bytes:
    d = _as_decimal(value)
    if d.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    if d.is_infinite():
        return struct.pack("!hhHh", 0, 0, 0xD000 if d > 0 else 0xF000, 0)
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    text = "".join(map(str, digits))
    if exponent < 0 and len(text) < -exponent:
        text = "0" * (-exponent - len(text)) + text
    if exponent > 0:
        text += "0" * exponent
        exponent = 0
    int_part = text[:len(text) + exponent] if exponent < 0 else text
    frac_part = text[len(text) + exponent:] if exponent < 0 else ""
    int_part = int_part.lstrip("0")
    if len(int_part) % 4:
        int_part = "0" * (4 - len(int_part) % 4) + int_part
    if len(frac_part) % 4:
        frac_part += "0" * (4 - len(frac_part) % 4)
    groups = [int(int_part[i:i + 4]) for i in range(0, len(int_part), 4)]
    weight = len(groups) - 1
    groups += [int(frac_part[i:i + 4]) for i in range(0, len(frac_part), 4)]
    while groups and groups[0] == 0:  # leading zero groups
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    head = struct.pack("!hhHh", len(groups), weight, 0x4000 if sign else 0, dscale)
    return head + struct.pack(f"!{len(groups)}H", *groups)


_BINARY_ENCODERS: dict[int, Callable[[Any], bytes]] = {
    BOOL: lambda v: b"\x01" if (_bool_text(v) == "t") else b"\x00",
    INT2: lambda v: struct.pack("!h", int(v)), INT4: lambda v: struct.pack("!i", int(v)),
    INT8: lambda v: struct.pack("!q", int(v)), OID: lambda v: struct.pack("!I", int(v)),
    FLOAT4: lambda v: struct.pack("!f", float(v)), FLOAT8: lambda v: struct.pack("!d", float(v)),
    NUMERIC: _numeric_binary,
    BYTEA: _bytes_of,
    DATE: lambda v: v.binary() if isinstance(v, Days) else struct.pack(
        "!i", ((v if isinstance(v, dt.date) and not isinstance(v, dt.datetime)
                else _as_datetime(v).date()) - EPOCH_DATE).days),
    TIMESTAMPTZ: lambda v: _ts_binary(v), TIMESTAMP: lambda v: _ts_binary(v),
    JSON: lambda v: json_text(v).encode(),
}  # fmt: skip


def encoder(oid: int, binary: bool) -> Callable[[Any], bytes]:
    """A function from a Python value (never None) to its wire bytes."""
    if binary:
        enc = _BINARY_ENCODERS.get(oid)
        if enc is not None:
            return enc
    text_enc = _TEXT_ENCODERS.get(oid, _text)
    return lambda v: text_enc(v).encode("utf-8", "surrogateescape")


BINARY_OIDS = frozenset(_BINARY_ENCODERS) | {TEXT, VARCHAR, NAME, BPCHAR, CHAR}


# --- parameters ------------------------------------------------------------------------


def _numeric_from_binary(raw: bytes) -> decimal.Decimal:
    """PostgreSQL's binary NUMERIC, read exactly as its `numeric_recv` reads it:
    base-10000 digits, a weight, a sign and a display scale (0..16383), digits
    past the scale cut away. Built from its digits, never through a context, so
    no value rounds or raises on its way in (a column's type decides later)."""
    if len(raw) < 8:
        raise BadParameter("numeric parameter is too short")
    ndigits, weight, sign, dscale = struct.unpack("!hhHh", raw[:8])
    if sign == 0xC000:
        return decimal.Decimal("NaN")
    if sign in (0xD000, 0xF000):
        return decimal.Decimal("Infinity" if sign == 0xD000 else "-Infinity")
    if ndigits < 0 or len(raw) != 8 + 2 * ndigits or sign not in (0, 0x4000):
        raise BadParameter("numeric parameter is malformed")
    if not 0 <= dscale <= _NUMERIC_DSCALE_MAX:
        raise BadParameter("invalid scale in external numeric value")
    groups = struct.unpack(f"!{ndigits}H", raw[8:])
    if any(g > 9999 for g in groups):
        raise BadParameter("invalid digit in external numeric value")
    digits = "".join(f"{g:04d}" for g in groups) or "0"
    exponent = 4 * (weight - ndigits + 1)  # of the last digit
    if exponent < -dscale:  # digits past the display scale: cut away
        digits = digits[:len(digits) - (-dscale - exponent)] or "0"
        exponent = -dscale
    if exponent > -dscale:  # the display scale's trailing zeros
        digits += "0" * (exponent + dscale)
        exponent = -dscale
    return decimal.Decimal((1 if sign == 0x4000 else 0, tuple(map(int, digits)), exponent))


_NUMERIC_DSCALE_MAX = 0x3FFF  # PostgreSQL's NUMERIC_DSCALE_MASK


def _int_from(raw: bytes, size: int) -> int:
    if len(raw) != size:
        raise BadParameter(f"integer parameter has {len(raw)} bytes, not {size}")
    return int.from_bytes(raw, "big", signed=True)


_BINARY_DECODERS: dict[int, Callable[[bytes], Any]] = {
    BOOL: lambda r: r != b"\x00" if len(r) == 1 else _fail("bool"),  # boolrecv: not zero
    INT2: lambda r: _int_from(r, 2), INT4: lambda r: _int_from(r, 4),
    INT8: lambda r: _int_from(r, 8),
    OID: lambda r: int.from_bytes(r, "big") if len(r) == 4 else _fail("oid"),
    FLOAT4: lambda r: struct.unpack("!f", r)[0] if len(r) == 4 else _fail("float4"),
    FLOAT8: lambda r: struct.unpack("!d", r)[0] if len(r) == 8 else _fail("float8"),
    NUMERIC: _numeric_from_binary,
    BYTEA: bytes,
    DATE: lambda r: _date_from(_int_from(r, 4)),
    TIMESTAMPTZ: lambda r: _timestamp_from(_int_from(r, 8)),
    TIMESTAMP: lambda r: _timestamp_from(_int_from(r, 8)),
    JSON: lambda r: _utf8(r),
    JSONB: lambda r: _utf8(r[1:]) if r[:1] == b"\x01" else _fail("jsonb"),
    TEXT: lambda r: _utf8(r), VARCHAR: lambda r: _utf8(r), NAME: lambda r: _utf8(r),
    BPCHAR: lambda r: _utf8(r), UNKNOWN: lambda r: _utf8(r), CHAR: lambda r: _utf8(r),
    UUID: lambda r: str(__import__("uuid").UUID(bytes=r)) if len(r) == 16 else _fail("uuid"),
}  # fmt: skip


def _date_from(days: int) -> dt.date | str:
    """A binary date: PostgreSQL's infinity (the integer's max, -infinity its
    min: asyncpg's date.max and date.min) as the text 'infinity' says, read as
    a text parameter is (it was 22P02 "malformed"); past Python's years 22008."""
    if days in (_INT32_MAX, -_INT32_MAX - 1):
        return "infinity" if days > 0 else "-infinity"
    try:
        return EPOCH_DATE + dt.timedelta(days=days)
    except OverflowError:
        raise BadParameter(f"date parameter out of range: {days} days from 2000-01-01",
                           "22008") from None


def _timestamp_from(micros: int) -> dt.datetime | str:
    """A binary timestamp, as `_date_from` reads a date."""
    if micros in (_INT64_MAX, -_INT64_MAX - 1):
        return "infinity" if micros > 0 else "-infinity"
    try:
        return EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        raise BadParameter(f"timestamp parameter out of range: {micros} microseconds from "
                           "2000-01-01", "22008") from None


_INT32_MAX, _INT64_MAX = (1 << 31) - 1, (1 << 63) - 1


def _fail(what: str) -> Any:
    raise BadParameter(f"{what} parameter is malformed")


class BadUnicode(ValueError):
    """Parameter text that is not valid UTF-8 (22021)."""


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadUnicode("a parameter is not valid UTF-8") from None


def _bool_from_text(text: str) -> bool:
    t = text.strip().lower()
    if t in ("t", "true", "yes", "on", "1", "y"):
        return True
    if t in ("f", "false", "no", "off", "0", "n"):
        return False
    raise BadParameter(f"invalid input syntax for type boolean: {text!r}")


def _bytea_from_text(text: str) -> bytes:
    """bytea in text: `\\x` and hex digits, or the old escape format, where a
    backslash is `\\\\` (one backslash) or `\\` and three octal digits 000-377
    (one byte) and any other character stands for its UTF-8 bytes. Read in C,
    never a Python step per character: a 10 MB parameter took 29 s of the
    event loop that way."""
    if text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise BadParameter("invalid hexadecimal bytea parameter") from None
    data = text.encode()
    if b"\\" not in data:
        return data
    # A backslash that starts neither `\\\\` nor an octal byte is an error; the
    # pairs are taken first, left to right, as the escapes are read.
    if _BAD_BYTEA_ESCAPE.search(data.replace(b"\\\\", b"\x00")):
        raise BadParameter("invalid escape in bytea parameter")
    decoded: bytes = codecs.escape_decode(data)[0]
    return decoded


# A backslash not followed by three octal digits of one byte (000-377), once
# every `\\\\` pair is out of the way (a NUL: no parameter text holds one).
_BAD_BYTEA_ESCAPE = re.compile(rb"\\(?![0-3][0-7]{2})")


_TEXT_DECODERS: dict[int, Callable[[str], Any]] = {
    BOOL: _bool_from_text,
    INT2: number_reader(integer_reader("smallint", -(1 << 15), (1 << 15) - 1)),
    INT4: number_reader(integer_reader("integer", -(1 << 31), (1 << 31) - 1)),
    INT8: number_reader(integer_reader("bigint", -(1 << 63), (1 << 63) - 1)),
    OID: number_reader(integer_reader("oid", -(1 << 31), (1 << 32) - 1)),
    FLOAT4: number_reader(read_float4), FLOAT8: number_reader(read_float8),
    NUMERIC: number_reader(decimal.Decimal),
    BYTEA: _bytea_from_text,
}  # fmt: skip


def decode_param(oid: int, binary: bool, raw: bytes | None) -> Any:
    """A parameter as a Python value (str for text-like and unknown types;
    dates and timestamps from text stay text, which Cairn reads itself)."""
    if raw is None:
        return None
    if oid in arrays.ELEMENTS:  # psycopg's lists, asyncpg's arrays
        return arrays.decode(oid, binary, raw, decode_param, BadParameter)
    if binary:
        dec = _BINARY_DECODERS.get(oid)
        if dec is None:
            raise BadParameter(f"binary parameters of type oid {oid} are not supported")
        try:
            value = dec(raw)
        except (struct.error, ArithmeticError, ValueError) as exc:
            if isinstance(exc, BadParameter | BadUnicode):
                raise
            raise BadParameter(f"parameter of type oid {oid} is malformed") from None
        if isinstance(value, str) and "\x00" in value:  # as in text format
            raise BadUnicode("a parameter holds a NUL character")
        return value
    text = _utf8(raw)
    if "\x00" in text:
        raise BadUnicode("a parameter holds a NUL character")
    dec_text = _TEXT_DECODERS.get(oid)
    return dec_text(text) if dec_text is not None else text
