"""What one query may hand back to its caller (`ResultLimits`), and one request's
answers together (`AnswerBudget`), apart from how the query is planned (query.py)."""

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


def compact(part: Any) -> Any:
    """The rows of `part` (a Table or RecordBatch cut to its first rows) copied
    into buffers of their own: a slice keeps the whole of what it was cut from
    alive, so an answer cut to no row still held DuckDB's 60 MB batch, one per
    SELECT of a request whose answers had spent the bounds."""
    try:
        return part.take(pa.array(range(part.num_rows), pa.int64()))
    except pa.ArrowNotImplementedError:  # a type `take` does not copy: the slice
        return part


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
        return table if rows == table.num_rows else self.mark(compact(table.slice(0, rows)))

    @staticmethod
    def mark(table: pa.Table) -> pa.Table:
        return table.replace_schema_metadata({**(table.schema.metadata or {}), TRUNCATED: b"true"})

    @staticmethod
    def truncated(table: pa.Table) -> bool:
        meta = table.schema.metadata
        return bool(meta) and meta.get(TRUNCATED) == b"true"


class AnswerBudget:
    """What the answers of one request may hold together: HTTP sends them in
    one body, so `[server] max_result_rows` / `max_result_bytes` bound their
    sum, not each (12 SELECTs of 60 MB each, 575 bytes of SQL, made a 720 MB
    body and 2.6 GB of server memory). Each statement's `ResultLimits` get
    what the answers before it left (`left_rows` / `left_bytes`; None: no
    bound), and `charge` takes its answer off."""

    def __init__(self, max_rows: int | None, max_bytes: int | None) -> None:
        self.left_rows = max_rows
        self.left_bytes = max_bytes
        self.spent = False  # an earlier answer of the request held a row

    def charge(self, rows: int, table: pa.Table | None) -> None:
        """Take an answer of `rows` rows (its values `table`, if any) off."""
        if rows:
            self.spent = True
        if self.left_rows is not None:
            self.left_rows = max(0, self.left_rows - rows)
        if self.left_bytes is not None and table is not None and table.num_rows:
            # The buffers' size, as `over` reads it (no walk on the event loop),
            # unless they may be more than the values: an answer cut (a slice)
            # or one past what is left.
            size = table.get_total_buffer_size()
            if size > self.left_bytes or ResultLimits.truncated(table):
                size = table.nbytes
            self.left_bytes = max(0, self.left_bytes - size)


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
