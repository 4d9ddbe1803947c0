"""Array parameters (psycopg's lists, asyncpg's arrays): one dimension of
a type Cairn reads as a parameter, in PostgreSQL's text form (`{1,2,"a b",NULL}`)
or its binary one, written into the statement as a DuckDB list. They were
taken as the text `'{1,2}'`: `k = ANY(%s)` was 'UNNEST() can only be applied
to lists'. Kept apart from types.py and params.py, which use it."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

# array oid -> element oid, as pg_type's typelem
ELEMENTS = {1000: 16, 1005: 21, 1007: 23, 1016: 20, 1009: 25, 1015: 1043, 1014: 1042,
            1021: 700, 1022: 701, 1231: 1700, 1182: 1082, 1115: 1114, 1185: 1184,
            2951: 2950, 1028: 26, 1001: 17}
ARRAY_OF = {element: array for array, element in ELEMENTS.items() if array != 1014}
# element oid -> the DuckDB type of an empty list of them
_DUCK = {16: "BOOLEAN", 21: "SMALLINT", 23: "INTEGER", 20: "BIGINT", 25: "VARCHAR",
         1043: "VARCHAR", 1042: "VARCHAR", 700: "REAL", 701: "DOUBLE", 1700: "DOUBLE",
         1082: "DATE", 1114: "TIMESTAMP", 1184: "TIMESTAMP", 2950: "UUID", 26: "BIGINT", 17: "BLOB"}


class PgArray(list[Any]):
    """The elements of an array parameter, with their oid."""

    def __init__(self, items: list[Any], element: int, cast: str = "") -> None:
        super().__init__(items)
        self.element = element
        self.cast = cast  # texts cast by DuckDB to a list of this type (a DECIMAL column's)

    def literal(self, write: Callable[[Any, int], str]) -> str:
        if not self:
            text = f"CAST([] AS {_DUCK.get(self.element, 'VARCHAR')}[])"
        else:
            text = "[" + ", ".join(write(v, self.element) for v in self) + "]"
        return f"CAST({text} AS {self.cast}[])" if self.cast else text


def duck_type(oid: int) -> str | None:
    """The DuckDB type of an array oid's NULL (a statement described)."""
    element = ELEMENTS.get(oid)
    return None if element is None else f"{_DUCK.get(element, 'VARCHAR')}[]"


def decode(oid: int, binary: bool, raw: bytes, element: Callable[[int, bool, bytes], Any],
           bad: type[Exception]) -> PgArray:
    """`raw` as an array of ELEMENTS[oid], each read by `element`; `bad` for
    a malformed one or more than one dimension."""
    elem = ELEMENTS[oid]
    try:
        parts = _binary(raw, bad) if binary else _text(raw.decode("utf-8"), bad)
    except UnicodeDecodeError:
        raise bad("array parameter is not UTF-8") from None
    return PgArray([None if p is None else element(elem, binary, p) for p in parts], elem)


def _binary(raw: bytes, bad: type[Exception]) -> list[bytes | None]:
    try:
        ndim, _flags, _elem = struct.unpack_from("!iiI", raw, 0)
        if ndim == 0:
            return []
        if ndim != 1:
            raise bad("an array parameter of more than one dimension is not supported")
        size, _lower = struct.unpack_from("!ii", raw, 12)
        at, out = 20, list[bytes | None]()
        for _ in range(size):
            (n,) = struct.unpack_from("!i", raw, at)
            at += 4
            if n == -1:
                out.append(None)
                continue
            if n < 0 or at + n > len(raw):
                raise bad("array parameter is malformed")
            out.append(raw[at:at + n])
            at += n
    except struct.error:
        raise bad("array parameter is malformed") from None
    if at != len(raw):
        raise bad("array parameter is malformed")
    return out


def text_elements(text: str, bad: type[Exception]) -> list[str | None]:
    """The elements of a one-dimensional array's text, `{a,"b c",NULL}`."""
    return [None if part is None else part.decode() for part in _text(text, bad)]


def _text(text: str, bad: type[Exception]) -> list[bytes | None]:
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise bad(f"malformed array literal: {text[:40]!r}")
    body, out, i = text[1:-1], list[bytes | None](), 0
    if not body.strip():
        return []
    while True:
        while i < len(body) and body[i].isspace():
            i += 1
        if i < len(body) and body[i] == "{":
            raise bad("an array parameter of more than one dimension is not supported")
        quoted, chars = i < len(body) and body[i] == '"', []
        i += quoted
        while i < len(body) and (quoted and body[i] != '"' or not quoted and body[i] != ","):
            if body[i] == "\\" and i + 1 < len(body):
                i += 1
            elif not quoted and body[i] in '{}"':
                raise bad(f"malformed array literal: {text[:40]!r}")
            chars.append(body[i])
            i += 1
        if quoted:
            if i >= len(body):
                raise bad(f"malformed array literal: {text[:40]!r}")
            i += 1
            while i < len(body) and body[i].isspace():
                i += 1
        word = "".join(chars) if quoted else "".join(chars).strip()
        out.append(None if not quoted and word.upper() == "NULL" else word.encode())
        if i >= len(body):
            return out
        if body[i] != ",":
            raise bad(f"malformed array literal: {text[:40]!r}")
        i += 1
