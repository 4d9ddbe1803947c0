"""A write statement's rows as the Arrow table the buffer stores (dml.py).

Column by column for many rows or Arrow columns (an UPDATE's, a bulk load's);
one row of Python values (a one-row INSERT ... VALUES, the hot statement of a
write-heavy load) in one conversion, with the column path as its fallback."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from catalog.errors import InvalidArgument


def columns_table(schema: pa.Schema, data: dict[str, Any], table_name: str) -> pa.Table:
    """The rows as a table of `schema`, column by column (`data`: name ->
    Arrow array or list of Python values). INVALID_ARGUMENT names the table
    if Arrow refuses a value."""
    arrays = [
        data[f.name] if isinstance(data[f.name], pa.Array | pa.ChunkedArray)
        else pa.array(data[f.name], f.type)
        for f in schema
    ]
    try:
        return pa.Table.from_arrays([a if a.type == f.type else a.cast(f.type)  # a cast to its
                                     for a, f in zip(arrays, schema, strict=False)],  # own type
                                    schema=schema)  # is a copy of the same values
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidArgument(f"bad value for table {table_name}: {exc}") from None


def struct_table(rows: pa.StructArray | pa.ChunkedArray, schema: pa.Schema) -> pa.Table:
    """A struct array of `schema`'s fields (no row of it null: rows of
    values) as a table of `schema`: its children as they are, a batch per
    chunk. ~14 µs less than `flatten` and `Table.from_arrays` for one row."""
    chunks = rows.chunks if isinstance(rows, pa.ChunkedArray) else [rows]
    return pa.Table.from_batches([pa.RecordBatch.from_struct_array(c) for c in chunks],
                                 schema=schema)


def one_row(schema: pa.Schema, struct: pa.StructType,
            data: dict[str, list[Any]]) -> pa.Table | None:
    """One row of Python values (`data`: name -> a one-value list) as a table
    of `schema`, converted by Arrow in one call: a struct (`struct`: the
    schema's fields) of the row's values, then its fields. ~20 µs where one
    array a column takes ~65 µs; the same table `columns_table` makes, as
    Arrow converts each value with the same converter either way
    (tests/storage/test_one_row.py). None if Arrow refuses a value:
    `columns_table` then converts again and raises the error it always has."""
    try:
        row = pa.array([tuple([data[f.name][0] for f in schema])], struct)
        return struct_table(row, schema)
    except Exception:  # noqa: BLE001 (whatever it is, the column path says it)
        return None
