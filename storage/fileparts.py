"""A flush's (or a snapshot's export's) rows as data files a restore reads.

A restore bounds a backed-up file's Parquet footer (storage/backup/footers.py:
at most MAX_CHUNKS column chunks, row groups times columns, and MAX_BYTES),
and BACKUP refuses a file past it. So a flush of very many rows of a very
wide table writes several files, each within both: parts of at most
MIN_ROW_GROUP_ROWS x (MAX_CHUNKS // columns) rows (a row group holds
MIN_ROW_GROUP_ROWS rows at least, so such a part has no more row groups),
and a part whose footer came out past MAX_BYTES (row groups of long TEXT
values, whose min and max it holds) is written again in halves. Every other
flush is one file, as before: 4,096 columns take 31,744 rows a file, 100
columns 1.3 million."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pyarrow as pa

from .backup import footers
from .files import MIN_ROW_GROUP_ROWS

T = TypeVar("T")


def parts(rows: pa.Table) -> list[pa.Table]:
    """`rows` in slices of no more column chunks than a restore reads."""
    step = MIN_ROW_GROUP_ROWS * max(1, footers.MAX_CHUNKS // max(1, rows.num_columns))
    if rows.num_rows <= step:
        return [rows]
    return [rows.slice(at, step) for at in range(0, rows.num_rows, step)]


def write_parts(rows: pa.Table, write: Callable[[pa.Table], T],
                footer_bytes: Callable[[T], int],
                discard: Callable[[T], None]) -> Iterator[tuple[pa.Table, T]]:
    """`write(part)` for each part of `rows` (`parts`), in order, each
    yielded once written (the caller then owns it); a part whose written
    footer (`footer_bytes`) is past MAX_BYTES is `discard`ed and written again
    in halves (one row's footer is always within it)."""
    todo = parts(rows)
    while todo:
        part = todo.pop(0)
        done = write(part)
        if part.num_rows > 1 and not _sure_within(part) and footer_bytes(done) > footers.MAX_BYTES:
            discard(done)
            half = part.num_rows // 2
            todo[:0] = [part.slice(0, half), part.slice(half)]
            continue
        yield part, done


def _sure_within(part: pa.Table) -> bool:
    """Whether no footer of `part` can pass MAX_BYTES (footers.bound's
    estimate, before the cap): then it is not read back."""
    groups = -(-part.num_rows // MIN_ROW_GROUP_ROWS)
    most = footers.BASE_BYTES + part.num_columns * (
        footers.COLUMN_BYTES + groups * footers.CHUNK_BYTES)
    return bool(most <= footers.MAX_BYTES)


def footer_of(path: str) -> int:
    """The footer length a Parquet file at `path` states (its last 8 bytes)."""
    with open(path, "rb") as f:
        f.seek(-8, 2)
        return int.from_bytes(f.read(4), "little")
