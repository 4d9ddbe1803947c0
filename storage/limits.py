"""What one query may hand back to its caller (`ResultLimits`), apart from how
the query is planned (query.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

TRUNCATED = b"cairn.truncated"  # schema metadata of an answer cut by ResultLimits


def over(table: pa.Table, max_bytes: int) -> bool:
    """Whether `table.nbytes` (the bytes its values use) is over `max_bytes`.
    `nbytes` walks the buffers with the GIL released (~12 µs for a one-row
    answer here), and a thread of a running job takes the GIL meanwhile:
    every point SELECT had the event loop wait for one then
    (docs/performance.md, "The event loop's GIL beside a BACKUP"). The size
    of the buffers, which holds the GIL and takes under a µs, is never less
    when no two columns or chunks share a buffer (`nbytes` counts a shared
    one each time it is used, the size once), as in every answer here:
    DuckDB's, the direct path's distinct columns, a system table's. So
    within it the answer is within the bound."""
    return bool(table.get_total_buffer_size() > max_bytes and table.nbytes > max_bytes)


SystemView = Callable[[str, pa.Table], pa.Table]  # (name, system table) -> what the caller sees


@dataclass(frozen=True)
class ResultLimits:
    """What one query may hand back to its caller.

    `max_rows` / `max_bytes` (None: no bound) cut the answer: rows past either
    are never read from DuckDB, and the returned table is marked truncated
    (`ResultLimits.truncated`). Bytes are Arrow buffer sizes, about the size of
    the values. `system_view(name, table)`, if given, is applied to every
    `system.<name>` table the query reads (the server hides other users' jobs
    and server paths from role-users this way)."""

    max_rows: int | None = None
    max_bytes: int | None = None
    system_view: SystemView | None = None

    @property
    def bounded(self) -> bool:
        return self.max_rows is not None or self.max_bytes is not None

    def cut(self, table: pa.Table) -> pa.Table:
        """`table` within the bounds (an answer already materialized, e.g. a system table)."""
        rows = table.num_rows
        if self.max_rows is not None:
            rows = min(rows, self.max_rows)
        if self.max_bytes is not None and over(
                table if rows == table.num_rows else table.slice(0, rows), self.max_bytes):
            lo, hi = 0, rows
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if table.slice(0, mid).nbytes <= self.max_bytes:
                    lo = mid
                else:
                    hi = mid - 1
            rows = lo
        return table if rows == table.num_rows else self.mark(table.slice(0, rows))

    @staticmethod
    def mark(table: pa.Table) -> pa.Table:
        return table.replace_schema_metadata({**(table.schema.metadata or {}), TRUNCATED: b"true"})

    @staticmethod
    def truncated(table: pa.Table) -> bool:
        meta = table.schema.metadata
        return bool(meta) and meta.get(TRUNCATED) == b"true"


WRITE_BYTES = 256 << 20  # rows one write's query may hand back (engine.select)
WRITE_LIMITS = ResultLimits(max_bytes=WRITE_BYTES)


def wide(plan: Any, floor: int) -> bool:
    """Does the plan read Parquet files of rows at least `floor` bytes long on
    average (stored bytes per row; `[storage] duckdb_wide_row_bytes`)?"""
    if floor <= 0 or plan.answer is not None:
        return False
    rows = size = 0
    for _, files, _ in plan.reads:
        for f in files:
            rows += f.rows
            size += f.bytes
    return rows > 0 and size >= floor * rows
