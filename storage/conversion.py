"""The buffer's rows in Arrow, started from a cached conversion: what a
BACKUP's snapshot (snapshot.py) and a flush (flush.py) share. Converting a
buffer of single-row INSERTs holds the GIL ~3.5 µs a row beside the writers,
so each converts only the batches a cached conversion does not already hold
(`TableState.keep_conversion`, docs/performance.md, issue 15)."""

from __future__ import annotations

import pyarrow as pa

from catalog import Table

from .batch import BufBatch
from .buffer import conform_batches
from .types import Column

Cached = tuple[int, tuple[bytes, ...], pa.Table]  # schema version, batch keys, rows


def cached_lead(cached: Cached | None, version: int, keys: tuple[bytes, ...]) -> int:
    """How many of the batches under `keys` (in buffer order), from the
    first, `cached` holds converted: 0 when it is of another schema version
    or its batches do not lead them."""
    if cached is None or cached[0] != version or keys[: len(cached[1])] != cached[1]:
        return 0
    return len(cached[1])


def convert_after(base: pa.Table | None, start: int, batches: list[BufBatch], table: Table,
                  columns: list[Column], version: int, loose: pa.Schema,
                  strict: pa.Schema | None) -> pa.Table:
    """`batches` as one table of `loose`: `base` (the conversion of the first
    `start` of them, or None) and the rest conformed (`conform_batches`),
    in fewer pieces past 64 chunks. A base that does not concatenate with the
    rest (never expected) is set aside and every batch converted: a BACKUP or
    a flush never fails on a cache."""
    parts = conform_batches(batches[start:], table, columns, version, loose, strict)
    pieces = [base if base is not None else loose.empty_table(), *parts]
    try:
        rows = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    except pa.ArrowInvalid:
        if base is None:
            raise
        return convert_after(None, 0, batches, table, columns, version, loose, strict)
    if rows.column(0).num_chunks > 64:  # many statements: one copy, fewer pieces
        rows = rows.combine_chunks()
    return rows
