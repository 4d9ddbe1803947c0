"""Each column of a file from a target is annotated as Cairn's writer annotates it.

A Parquet column's type is told twice in its footer: the `logicalType` and
the legacy `converted_type` (with `scale` and `precision` for a decimal).
pyarrow, which reads every file VERIFY and RESTORE check, takes the
logicalType and ignores the converted type; DuckDB, which reads every file a
query reads, takes the converted type for most types and ignores the
logicalType. A file re-stored under a fresh sha256 with its TEXT column's
converted type set to DECIMAL passed every check (pyarrow read the text) and
was restored; queries then read `'a'` as 9.7. With UINT_64 on a BIGINT key,
-5 was read as 18446744073709551611 and a lookup of -5 found nothing; with
BSON every SELECT of the table failed; with the converted type removed,
TEXT read as BLOB and DATE as INTEGER.

So the annotations of every column (physical type, type length, converted
type, scale, precision, logicalType) must be exactly those pyarrow writes for
the column's Arrow type, as Cairn's flushes do (storage/files.py): then both
readers read the same type. The reference footers are written once per
schema, from no rows.

A file's key-value metadata is read by DuckDB too: GeoParquet's `geo` key
makes it read the BYTES columns the key names as GEOMETRY, which pyarrow
ignores. A file re-stored with one verified valid and restored; then its
table's big-endian WKB values read back as other (little-endian) bytes,
`hex(y)` and `y > '\\x00'` were refused, and after one INSERT of a value that
is no WKB every SELECT of the table failed. Cairn writes no such key."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import footer_guard

# SchemaElement fields: type, type_length, converted_type, scale, precision, logicalType.
ANNOTATIONS = (1, 2, 6, 7, 8, 10)
_NAMES = {1: "physical type", 2: "type length", 6: "converted_type", 7: "scale",
          8: "precision", 10: "logicalType"}


DUCKDB_KEYS = ("geo",)  # metadata keys DuckDB reads a column's type from


def metadata_problem(metadata: dict[bytes, bytes] | None) -> str | None:
    """None unless the file's key-value metadata holds a key DuckDB reads a
    column's type from (case aside), else what is wrong."""
    for key in metadata or {}:
        if key.decode("utf-8", "replace").strip().lower() in DUCKDB_KEYS:
            return (f"has a '{key.decode('utf-8', 'replace')}' key in its metadata, which Cairn "
                    "never writes: a query would read its columns as another type (GEOMETRY)")
    return None


@lru_cache(maxsize=256)
def reference(types: tuple[pa.DataType, ...]) -> tuple[dict[int, Any], ...]:
    """The annotations pyarrow writes for columns of `types`, in order."""
    schema = pa.schema([pa.field(f"c{i}", t) for i, t in enumerate(types)])
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    data = sink.getvalue().to_pybytes()
    size = int.from_bytes(data[-8:-4], "little")
    leaves = footer_guard.check(data[-(size + 8):-8])
    return tuple(_annotations(leaf) for leaf in leaves)


def _annotations(leaf: dict[int, Any]) -> dict[int, Any]:
    return {k: leaf[k] for k in ANNOTATIONS if k in leaf}


def problem(leaves: list[dict[int, Any]], columns: list[tuple[str, pa.DataType]]) -> str | None:
    """None when each leaf (footer_guard.check's) is annotated as pyarrow
    annotates the column of `columns` (name, Arrow type) at its place, else
    what differs."""
    want = reference(tuple(t for _, t in columns))
    for leaf, expected, (name, kind) in zip(leaves, want, columns, strict=True):
        got = _annotations(leaf)
        if got != expected:
            fields = sorted(set(got) ^ set(expected) | {k for k in got.keys() & expected.keys()
                                                         if got[k] != expected[k]})
            return (f"annotates column '{name}' ({kind}) otherwise than Cairn writes it "
                    f"(its {', '.join(_NAMES[k] for k in fields)}): a query would read it "
                    "as another type")
    return None
