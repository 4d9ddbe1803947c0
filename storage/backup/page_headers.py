"""Every data page header of a file from a target, as both readers take it.

A version 1 data page's header names the encoding of its definition levels.
pyarrow, which reads every file VERIFY and RESTORE check, honours it: told
BIT_PACKED (a deprecated encoding), it decodes the levels bit-packed. DuckDB,
which reads every file a query reads, decodes them as RLE whatever the
header says. A TEXT column's page whose header said BIT_PACKED over RLE
levels (a length of 8: the first byte 0x08, every bit of the first three 0)
was read by pyarrow as three NULLs and by DuckDB as 'EVIL-a', 'EVIL-b',
'EVIL-c': verified valid (no check saw those values), restored, and every
query read them. Cairn's writer (pyarrow) writes RLE levels only, so any
other level encoding is refused. The pages are walked as pyarrow walks a
column chunk: from its first page, until the chunk's values are read."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

from . import footer_guard, page_stats

DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3  # PageType
RLE = 3  # Encoding
_NAMES = {0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
          6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY",
          9: "BYTE_STREAM_SPLIT"}
_PAGE_NAMES = {0: "DATA_PAGE", 1: "INDEX_PAGE", 2: "DICTIONARY_PAGE", 3: "DATA_PAGE_V2"}
HEADER_READS = (4 << 10, 64 << 10, 1 << 20)  # a header holds its page's statistics


def problem(source: str | IO[bytes], metadata: Any,
            stats: page_stats.Pages | None = None) -> str | None:
    """None when every data page of the Parquet file `source` (its pyarrow
    FileMetaData `metadata`) has RLE levels, else what is wrong (a phrase to
    follow the file's name). `stats`, if given, gets each chunk's data pages'
    values and statistics where any page has some (page_stats.py)."""
    with open(source, "rb") if isinstance(source, str) else contextlib.nullcontext(source) as f:
        try:
            last = f.seek(0, 2)  # (a page past it: seeking there fails on some files)
            for g in range(metadata.num_row_groups):
                group = metadata.row_group(g)
                for c in range(group.num_columns):
                    chunk = group.column(c)
                    where = f"column '{chunk.path_in_schema}' of row group {g}"
                    if chunk.num_values != group.num_rows:  # (a flat column: one a row)
                        return (f"has {chunk.num_values} values of {where}, whose rows "
                                f"are {group.num_rows}")
                    said: list[tuple[int, dict[int, Any] | None]] = []
                    for i, page in enumerate(_pages(f, chunk, last)):
                        if (wrong := _kind_problem(page, i)) is not None:
                            return f"has a page of {where} {wrong}"
                        wrong = _level_problem(page)
                        if wrong is not None:
                            return f"has a data page of {where} {wrong}"
                        if page.get(1) in (DATA_PAGE, DATA_PAGE_V2):
                            said.append((_values(page),
                                         page_stats.of_page(page, page.get(1) == DATA_PAGE)))
                    if stats is not None and any(s is not None for _, s in said):
                        stats[(g, c)] = said
        except footer_guard.Malformed as exc:
            return f"has a page header that cannot be read ({exc})"
        finally:
            if not isinstance(source, str):
                source.seek(0)
    return None


def _kind_problem(page: dict[int, Any], i: int) -> str | None:
    """Cairn's writer writes a chunk's dictionary page first, if any, then
    data pages of values. Any other page (an INDEX_PAGE, a dictionary page
    later, a data page of no values) both readers skip or refuse, but three
    million 9-byte INDEX_PAGE headers kept a 27 MB file's VERIFY walking
    them here for 43 s (and any page pyarrow does not read may be there:
    the walk goes on until the chunk's values are read)."""
    kind = page.get(1)
    if kind == DICTIONARY_PAGE and i == 0:
        return None
    if kind not in (DATA_PAGE, DATA_PAGE_V2):
        name = _PAGE_NAMES.get(kind, "?") if isinstance(kind, int) else "?"
        return (f"of type {name}{' after its first page' if kind == DICTIONARY_PAGE else ''}: "
                "Cairn's writer writes a dictionary page first and data pages")
    if _values(page) < 1:
        return "of no values (Cairn's writer writes none)"
    return None


def _level_problem(page: dict[int, Any]) -> str | None:
    if page.get(1) != DATA_PAGE:
        return None  # (a version 2 page's levels are RLE by definition)
    header = page.get(5)
    if not isinstance(header, dict):
        return "without its header"
    for field, what in ((3, "definition"), (4, "repetition")):
        if (kind := header.get(field, RLE)) != RLE:
            name = _NAMES.get(kind, repr(kind)) if isinstance(kind, int) else "?"
            return (f"whose header says its {what} levels are {name}, not RLE as Cairn's "
                    "writer writes them: the checks (pyarrow) would decode them so, every "
                    "query (DuckDB) as RLE")
    return None


def _pages(f: IO[bytes], chunk: Any, last: int) -> Iterator[dict[int, Any]]:
    """The page headers of `chunk`, from where pyarrow starts it (its
    dictionary page's offset if before its first data page's) until its
    values are read or its bytes end."""
    offsets = [o for o in (chunk.dictionary_page_offset, chunk.data_page_offset)
               if o is not None and o > 0]
    if not offsets:
        return
    at = min(offsets)
    end, values, want = at + chunk.total_compressed_size, 0, chunk.num_values
    while at < end and values < want:
        if at >= last:
            raise footer_guard.Malformed("a page past the file's end")
        page, length = _header(f, at)
        yield page
        if page.get(1) in (DATA_PAGE, DATA_PAGE_V2):
            values += _values(page)
        size = page.get(3)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise footer_guard.Malformed("a page of no size")
        at += length + size


def _values(page: dict[int, Any]) -> int:
    """A data page's count of values. The walk reads pages pyarrow may not
    (a chunk saying more values than its row group's rows: pyarrow stops at
    the rows), so anything may be there: a count as a Thrift list was a
    TypeError here, a 500 of VERIFY and RESTORE."""
    header = page.get(5 if page.get(1) == DATA_PAGE else 8)
    count = header.get(1) if isinstance(header, dict) else None
    if not isinstance(count, int) or isinstance(count, bool):
        raise footer_guard.Malformed("a data page without its count of values")
    return count


def _header(f: IO[bytes], at: int) -> tuple[dict[int, Any], int]:
    for want in HEADER_READS:
        f.seek(at)
        reader = footer_guard.page_reader(f.read(want))
        try:
            return reader.struct(), reader.at
        except footer_guard.Malformed:
            if want == HEADER_READS[-1]:
                raise
    raise AssertionError("unreachable")
