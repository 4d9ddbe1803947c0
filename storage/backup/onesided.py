"""Statistics of a text column that pyarrow does not report, and DuckDB skips
row groups by.

pyarrow reports a column chunk's min and max only when both are there (and
of a known order): a TEXT column's statistics cut to a maximum of 'a', no
minimum, were ignored by every check of VERIFY and RESTORE, while DuckDB
skipped the row group by them (`WHERE v = 'c'` missed a restored row). Cairn's
own writer leaves such statistics too: pyarrow 26 writes a chunk of 256 KiB
texts with bounds it does not itself report. So such a bound is not refused
on sight (a rule that did refused Cairn's own backups, 2026-12-07), but
compared with the values: each row group's values must lie within it, as
byte strings (Parquet's order for BYTE_ARRAY: unsigned, bytewise). Only text
and byte columns: pyarrow reports both bounds of every fixed-width column."""

from __future__ import annotations

from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from . import footer_guard


def unreported(source: str | IO[bytes], metadata: Any
               ) -> dict[tuple[int, str], tuple[bytes | None, bytes | None]]:
    """(row group, column name): (min, max) of each text chunk whose footer
    holds a bound that pyarrow (`metadata`) does not report."""
    footer = _footer(source)
    raw: dict[tuple[int, int], tuple[Any, Any]] = {}
    footer_guard.check(footer, text_bounds=raw)
    out: dict[tuple[int, str], tuple[bytes | None, bytes | None]] = {}
    for (g, i), (lo, hi) in raw.items():
        stats = metadata.row_group(g).column(i).statistics
        if stats is not None and stats.has_min_max:
            continue  # pyarrow reads them, and the checks compare them
        name = metadata.schema.column(i).path
        out[(g, name)] = (lo if isinstance(lo, bytes) else None,
                          hi if isinstance(hi, bytes) else None)
    return out


def outside(column: pa.Array, bounds: tuple[bytes | None, bytes | None]) -> str | None:
    """None when every value of `column` lies within `bounds`, else what is wrong."""
    got = pc.min_max(column)
    lo, hi = _bytes(got["min"].as_py()), _bytes(got["max"].as_py())
    if lo is None or hi is None:  # no value but NULLs
        return None
    low, high = bounds
    if low is not None and lo < low:
        return "holds a value below the minimum its statistics give"
    if high is not None and hi > high:
        return "holds a value above the maximum its statistics give"
    return None


def _bytes(value: Any) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value


def _footer(source: str | IO[bytes]) -> bytes:
    if isinstance(source, str):
        with open(source, "rb") as f:
            return _read_footer(f)
    return _read_footer(source)


def _read_footer(f: IO[bytes]) -> bytes:
    at = f.tell()
    try:
        f.seek(-8, 2)
        length = int.from_bytes(f.read(8)[:4], "little")
        f.seek(-(length + 8), 2)
        return f.read(length)
    finally:
        f.seek(at)
