"""Each data page's own statistics, against the values the page holds.

A data page's header may carry Statistics of its own (Cairn's writer,
pyarrow, writes them: a minimum, a maximum and a count of NULLs a page).
pyarrow never reads them; DuckDB, which reads every file a query reads,
skips a page by them when a filter is pushed into its scan. A Cairn file
whose first page of `id` said 'min -9, max -7' (its values 0..399, the
footer's statistics untouched) verified valid and was restored; every
`SELECT ... WHERE id = 1` then found nothing, and `id >= 1` 2,700 rows of
2,999, while `SELECT *` showed them all (so did the row-by-row comparison,
duck_read.py, which reads with no filter). The same with a TEXT column.

So every data page's statistics (page_headers.py collects them as it walks
the pages: the `stats` of its `problem`) are checked against the page's
own values, read with pyarrow as the checks read them: its minimum and
maximum must bound them (NaN aside, as in the statistics; but a file saying
it writes no minimum and maximum of a REAL or DOUBLE column holding NaN,
files.NAN_RULE, has none on a page holding NaN: with its chunk's footer
bounds too, DuckDB skipped such a page for `isnan(x)`; those are refused
already, contents.py, and DuckDB 2.0 reads no page's bounds in a chunk
without them, so this guards a reader that would), its count of NULLs must
be theirs. A statistic of another wire type than its own is
skipped by both C++ readers, and here. A statistic is decoded only where
both readers take it alike, as Cairn's writer writes it: a BOOLEAN's byte 0
or 1 (DuckDB took 0x02 as true, bit 0 here as false: `WHERE b = false`
skipped a page of false values), a DECIMAL's bytes as many as its type's
(DuckDB refused 9 bytes of a DECIMAL(10,2): every filtered query of the
column failed); any other is refused."""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from catalog.diskerrors import read_shortage

from . import check_reader
from .check_reader import CheckReader

# Statistics fields: max, min (deprecated); null_count; max_value, min_value.
MAX, MIN, NULLS, MAX_VALUE, MIN_VALUE = 1, 2, 3, 5, 6
BATCH_ROWS = 65_536  # as contents.BATCH_ROWS
SHOWN = 64  # characters of a bound a message shows
_FIXED = {"INT32": "<i", "INT64": "<q", "FLOAT": "<f", "DOUBLE": "<d"}

Pages = dict[tuple[int, int], list[tuple[int, dict[int, Any] | None]]]


def of_page(page: dict[int, Any], v1: bool) -> dict[int, Any] | None:
    """The Statistics a data page header carries (None: none a C++ reader
    takes: a field of another wire type is skipped)."""
    header = page.get(5 if v1 else 8)
    stats = header.get(5 if v1 else 8) if isinstance(header, dict) else None
    if not isinstance(stats, dict):
        return None
    kept = {f: v for f, v in stats.items()
            if (f in (MAX, MIN, MAX_VALUE, MIN_VALUE) and isinstance(v, bytes))
            or (f == NULLS and isinstance(v, int) and not isinstance(v, bool))}
    return kept or None


def problem(source: str | IO[bytes], metadata: Any, pages: Pages,
            dictionary: tuple[str, ...] = (), plain: tuple[str, ...] = (),
            batch_rows: tuple[int, ...] = (), nan_rule: bool = False) -> str | None:
    """None when every data page of `pages` ((row group, column): each data
    page's values and statistics, in order) holds values its statistics
    bound, else what is wrong (a phrase to follow the file's name). Read as
    contents.values_problem reads the file: text columns in `dictionary` as
    a dictionary, those in `plain` in their row group's `batch_rows`.
    `nan_rule`: the file says it follows files.NAN_RULE."""
    pages = {at: said for at, said in pages.items() if not _as_its_chunk(metadata, at, said)}
    if not pages:
        return None
    try:
        with CheckReader(source, list(dictionary), buffer_size=1 << 20,
                         metadata=metadata) as pf:
            for (g, c), said in sorted(pages.items()):
                column = metadata.schema.column(c)
                name, physical = column.path, column.physical_type
                kind = pf.schema_arrow.field(name).type
                rows = (batch_rows[g] if name in plain and g < len(batch_rows) else BATCH_ROWS)
                walk = _Walk(said, kind, physical, nan_rule, column.length)
                for batch in pf.iter_batches(rows, [g], [name]):
                    if (wrong := walk.add(batch.column(0))) is not None:
                        return f"has a data page of column '{name}' of row group {g} {wrong}"
                if (wrong := walk.done()) is not None:
                    return f"has a data page of column '{name}' of row group {g} {wrong}"
    except Exception as exc:  # noqa: BLE001 - any file pyarrow cannot read is damage
        if (short := read_shortage(exc, "cannot check a file of the backup")) is not None:
            raise short from exc  # out of memory (or files) now: no damage
        return f"cannot be read ({type(exc).__name__})"
    finally:
        if not isinstance(source, str):
            source.seek(0)
        check_reader.release()
    return None


def _as_its_chunk(metadata: Any, at: tuple[int, int],
                  said: list[tuple[int, dict[int, Any] | None]]) -> bool:
    """Whether a chunk of one data page says of it what its footer says of
    the chunk: each statistic the page gives, the footer's (which the checks
    compared with its values, contents.py): nothing to read again (a file of
    Cairn's of a few rows is one page a chunk)."""
    if len(said) != 1 or said[0][1] is None:
        return len(said) == 1
    page, chunk = said[0][1], metadata.row_group(at[0]).column(at[1]).statistics
    if chunk is None:
        return False
    footer = {NULLS: chunk.null_count if chunk.has_null_count else None,
              MIN_VALUE: chunk.min_raw if chunk.has_min_max else None,
              MAX_VALUE: chunk.max_raw if chunk.has_min_max else None}
    footer[MIN], footer[MAX] = footer[MIN_VALUE], footer[MAX_VALUE]
    physical = metadata.schema.column(at[1]).physical_type
    for field, value in page.items():
        known = footer[field]
        if known is None or isinstance(known, float) and known != known:
            return False
        if field != NULLS and not isinstance(known, bytes):
            value = _decoded(value, physical, pa.null())
        if value is None or type(value) is not type(known) or value != known:
            return False
    return True


class _Walk:
    """A chunk's values, batch after batch, cut at its pages' bounds."""

    def __init__(self, pages: list[tuple[int, dict[int, Any] | None]], kind: pa.DataType,
                 physical: str, nan_rule: bool = False, width: int | None = None) -> None:
        self.pages, self.kind, self.physical, self.nan_rule = pages, kind, physical, nan_rule
        self.width = width  # a FIXED_LEN_BYTE_ARRAY's length
        self.at = 0  # the page
        self.left = pages[0][0] if pages else 0  # its values still to come
        self._reset()

    def _reset(self) -> None:
        self.nulls, self.low, self.high, self.nan = 0, None, None, False

    def add(self, values: pa.Array) -> str | None:
        pos = 0
        while pos < len(values):
            if self.at >= len(self.pages):
                return "past its pages' values"  # (page_headers.py counted them)
            take = min(self.left, len(values) - pos)
            self._take(values.slice(pos, take))
            pos += take
            self.left -= take
            if self.left == 0:
                if (wrong := self._page_done()) is not None:
                    return wrong
                self.at += 1
                self.left = self.pages[self.at][0] if self.at < len(self.pages) else 0
                self._reset()
        return None

    def done(self) -> str | None:
        if self.at < len(self.pages):
            return "holding fewer values than its header says"
        return None

    def _take(self, part: pa.Array) -> None:
        self.nulls += part.null_count
        if self.pages[self.at][1] is None or len(part) == part.null_count:
            return
        if isinstance(part, pa.DictionaryArray):
            part = part.dictionary.take(pc.unique(part.indices.drop_null()))
        if pa.types.is_floating(self.kind) and pc.any(pc.is_nan(part)).as_py():
            self.nan = True
        if pa.types.is_date32(self.kind) or pa.types.is_timestamp(self.kind):
            part = part.cast(pa.int32() if pa.types.is_date32(self.kind) else pa.int64())
        found = pc.min_max(part)
        low, high = _physical(found["min"].as_py(), self.kind), _physical(
            found["max"].as_py(), self.kind)
        if low is None:  # (NaN alone: left out of the statistics)
            return
        self.low = low if self.low is None or low < self.low else self.low
        self.high = high if self.high is None or high > self.high else self.high

    def _page_done(self) -> str | None:
        stats = self.pages[self.at][1]
        if stats is None:
            return None
        where = f"(its page {self.at})"
        if NULLS in stats and stats[NULLS] != self.nulls:
            return (f"{where} whose header counts {stats[NULLS]} NULL values, and it holds "
                    f"{self.nulls}: every query (DuckDB) skips pages by them")
        if self.nan and self.nan_rule and any(f in stats for f in (MIN_VALUE, MIN, MAX_VALUE, MAX)):
            return (f"{where} whose header gives a minimum or maximum that leaves out the NaN "
                    "it holds, though the file says it writes none for such a column "
                    "(cairn.nan_statistics)")
        if self.low is None:
            return None
        for field, bound in ((MIN_VALUE, "min"), (MIN, "min"), (MAX_VALUE, "max"), (MAX, "max")):
            if field not in stats:
                continue
            said = _decoded(stats[field], self.physical, self.kind, self.width)
            if said is None:
                return (f"{where} whose header gives a {bound} statistic that does not decode "
                        "as Cairn's writer writes it (a BOOLEAN's byte 0 or 1, a number's "
                        "bytes as wide as its type): the two readers take it differently")
            if (said > self.low) if bound == "min" else (said < self.high):
                return (f"{where} whose header puts its values within statistics that leave "
                        f"out values it holds ({bound} {_shown(said)}; it holds "
                        f"{_shown(self.low)}..{_shown(self.high)}): every query (DuckDB) skips "
                        "pages by them")
        return None


def _physical(value: Any, kind: pa.DataType) -> Any:
    """A value as its statistics store it (what `_decoded` gives)."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if pa.types.is_decimal(kind):  # its unscaled integer, exactly (no context's rounding)
        sign, digits, exponent = Decimal(value).as_tuple()
        shift = int(exponent) + kind.scale
        unscaled = int("".join(map(str, digits)) or "0")
        unscaled = unscaled * 10 ** shift if shift >= 0 else unscaled // 10 ** -shift
        return -unscaled if sign else unscaled
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return int(value)
    return value


def _shown(value: Any) -> str:
    """A bound in a message: at most SHOWN characters of it (a statistic
    may be a page header's megabyte)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** SHOWN else "(long)"
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def _decoded(raw: bytes, physical: str, kind: pa.DataType, width: int | None = None) -> Any:
    """A statistic's bytes as a value of the column (None: not one, or not
    as Cairn's writer writes it: `width`, a FIXED_LEN_BYTE_ARRAY's length)."""
    if pa.types.is_decimal(kind) and physical == "FIXED_LEN_BYTE_ARRAY":
        return int.from_bytes(raw, "big", signed=True) if raw and len(raw) == width else None
    if pa.types.is_decimal(kind) and physical == "BYTE_ARRAY":
        return int.from_bytes(raw, "big", signed=True) if raw else None
    if physical in _FIXED:
        fmt = _FIXED[physical]
        if len(raw) != struct.calcsize(fmt):
            return None
        value = struct.unpack(fmt, raw)[0]
        return None if isinstance(value, float) and value != value else value
    if physical == "BOOLEAN":
        return raw[0] if raw in (b"\x00", b"\x01") else None
    if physical == "BYTE_ARRAY":
        return raw
    return None
