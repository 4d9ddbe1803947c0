"""BIT values in an answer as DuckDB's text of them (`0101`).

DuckDB hands a BIT to Arrow as a plain binary of its storage (a byte saying
how many leading bits are padding, then the bits): `'0101'::BIT` went over
HTTP as base64 `BPU=` and over the PostgreSQL protocol as `\\x04f5`, at the
top of an answer and inside a LIST, STRUCT or MAP alike. Arrow cannot tell it
from a BLOB, so an answer with a binary anywhere in it, from SQL that names a
BIT (every way to make one says `bit`: `::BIT`, `BITSTRING`, `bitstring()`,
`set_bit`, `bitstring_agg`), is bound once more, not run, to read DuckDB's own
types; its BIT values become text, a top-level one marked as a BIT column."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .arrowtypes import holds

_NAMES_BIT = re.compile(r"bit", re.IGNORECASE)
CAIRN_TYPE_KEY = b"cairn.type"  # as server/result.py reads it


def bits_as_text(cur: Any, sql: str, table: pa.Table,
                 kinds: Callable[[], list[Any]] | None = None) -> pa.Table:
    """`table` with every BIT value in it as DuckDB's text of it. `kinds`:
    DuckDB's types of its columns (storage/duck.py `Kinds`); else bound here."""
    if not _NAMES_BIT.search(sql) or not any(_has_binary(f.type) for f in table.schema):
        return table
    types = kinds() if kinds is not None else cur.sql(sql).types
    if len(types) != table.num_columns or not any(_has_bit(k) for k in types):
        return table
    fields, columns = [], []
    for f, column, kind in zip(table.schema, table.columns, types, strict=True):
        if not _has_bit(kind):
            fields.append(f)
            columns.append(column)
            continue
        chunks = [_as_text(c, kind) for c in column.chunks]
        t = chunks[0].type if chunks else _as_text(pa.array([], f.type), kind).type
        meta = {**(f.metadata or {}), CAIRN_TYPE_KEY: b"BIT"} if kind.id == "bit" else f.metadata
        fields.append(pa.field(f.name, t, f.nullable, meta))
        columns.append(pa.chunked_array(chunks, t))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, table.schema.metadata))


def bit_text(stored: bytes) -> str:
    """DuckDB's BIT storage (padding count, then the bits) as its text."""
    if not stored:
        return ""
    return "".join(f"{b:08b}" for b in stored[1:])[stored[0]:]


def _has_binary(t: pa.DataType) -> bool:
    return holds(t, pa.types.is_binary)


def _has_bit(kind: Any) -> bool:
    if kind.id == "bit":
        return True
    if kind.id in ("list", "array", "struct", "map", "union"):
        return any(_has_bit(child) for _, child in kind.children if not isinstance(child, int))
    return False


def _as_text(arr: pa.Array, kind: Any) -> pa.Array:
    """`arr` (of DuckDB type `kind`) with its BIT values as text."""
    t = arr.type
    if not _has_bit(kind):
        return arr
    if kind.id == "bit" and pa.types.is_binary(t):
        return pa.array([None if v is None else bit_text(v) for v in arr.to_pylist()], pa.string())
    children = [c for _, c in kind.children]
    mask = arr.is_null() if arr.null_count else None
    if pa.types.is_map(t):
        offsets, start, end = _offsets(arr)
        keys = _as_text(arr.keys.slice(start, end - start), children[0])
        items = _as_text(arr.items.slice(start, end - start), children[1])
        return pa.MapArray.from_arrays(offsets, keys, items, mask=mask)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets, start, end = _offsets(arr)
        values = _as_text(arr.values.slice(start, end - start), children[0])
        field = pa.field(t.value_field.name, values.type)
        kind_of = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return type(arr).from_arrays(offsets, values, type=kind_of(field), mask=mask)
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        values = _as_text(arr.values.slice(arr.offset * size, len(arr) * size), children[0])
        field = pa.field(t.value_field.name, values.type)
        return pa.FixedSizeListArray.from_arrays(values, type=pa.list_(field, size), mask=mask)
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        parts = [_as_text(c, k) for c, k in zip(arr.flatten(), children, strict=True)]
        return pa.StructArray.from_arrays(
            parts, fields=[pa.field(f.name, p.type, f.nullable) for f, p in zip(fields, parts, strict=True)],
            mask=mask)
    if pa.types.is_union(t) and t.mode == "sparse":
        members = children[1:]  # DuckDB's first child is the tag
        parts = [_as_text(arr.field(i), k) for i, k in enumerate(members)]
        return pa.UnionArray.from_sparse(arr.type_codes, parts, [t.field(i).name for i in range(t.num_fields)],
                                         list(t.type_codes))
    return arr


def _offsets(arr: pa.Array) -> tuple[pa.Array, int, int]:
    """A list's or map's offsets from 0 and the span of its values they
    cover (Arrow builds no list from a slice's offsets and a null mask)."""
    offsets = arr.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(offsets, pa.scalar(start, offsets.type)), start, end
