"""Text values holding U+0000, which no PostgreSQL text can carry.

HTTP takes and returns them (`'a\\u0000b'` in a JSON body), and DuckDB makes
them (`chr(0)`). Over the PostgreSQL protocol such a value went as a text
field holding a 0x00 byte; libpq clients (psql, psycopg2, pg_dump) read a
field as a C string, so the 3-character `'a\\0b'` showed as `a`. PostgreSQL
refuses a NUL it cannot convert to text with 22P05; so does Cairn, before any
row of the answer is sent. A json column's (and a LIST's, STRUCT's, MAP's)
JSON text writes a NUL `\\u0000`, and a BLOB goes as hex: those are sent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import types as t
from .errors import PgError


def refuse(column: str) -> PgError:
    return PgError("22P05", f'column "{column}" holds a NUL character (U+0000), which '
                            "PostgreSQL text cannot carry, so no row is sent: the HTTP API "
                            "returns the value as stored; here select encode(...) (bytea) or "
                            "replace(..., chr(0), '')",
                   detail="\\u0000 cannot be converted to text.")


def in_table(columns: list[tuple[str, int]], table: pa.Table) -> str | None:
    """The first column sent as text (`columns`: name, oid) whose strings in
    `table` hold a NUL."""
    for (name, oid), column in zip(columns, table.columns, strict=False):
        if oid != t.JSON and any(_may_hold(chunk) for chunk in column.chunks) and _holds(column):
            return name
    return None


def in_rows(columns: list[tuple[str, int]], rows: list[list[Any]]) -> str | None:
    """in_table for rows of Python values (SHOW's, a catalog query's)."""
    for i, (name, oid) in enumerate(columns):
        if oid != t.JSON and any(isinstance(row[i], str) and "\x00" in row[i]
                                 for row in rows if i < len(row)):
            return name
    return None


def _may_hold(chunk: pa.Array) -> bool:
    """Whether a string array's bytes hold a 0x00 (in UTF-8 only a NUL is
    one), 50 times faster than asking each string; the bytes of a NULL
    entry are looked at too, so a yes is asked again string by string."""
    typ = chunk.type
    if pa.types.is_dictionary(typ):
        return _may_hold(chunk.dictionary)
    if pa.types.is_string_view(typ):
        return True
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)) or len(chunk) == 0:
        return False
    _, offsets, data = chunk.buffers()
    if offsets is None or data is None:
        return False
    width = np.int32 if pa.types.is_string(typ) else np.int64
    ends = np.frombuffer(offsets, width)
    lo, hi = int(ends[chunk.offset]), int(ends[chunk.offset + len(chunk)])
    return not np.frombuffer(data, np.uint8, hi - lo, lo).all()


def _holds(column: pa.ChunkedArray) -> bool:
    typ = column.type
    if pa.types.is_dictionary(typ):
        column = column.cast(typ.value_type)
    if pa.types.is_string_view(column.type):  # no kernel of match_substring takes a view
        column = column.cast(pa.large_string())
    return bool(pc.any(pc.match_substring(column, "\x00")).as_py())
