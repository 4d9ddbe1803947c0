"""Which text columns of a file from a target the checks read plain, and in
batches of how many rows (contents.values_problem).

Read as a dictionary, a column of 16,000 1,000-byte values took ~100 MB to
check (pyarrow builds a dictionary of the row group's values); plain in
small batches, ~35 MB. But a batch read plain holds every value of its rows
decoded, so its rows are sized by what the pages' own headers bound them to:

- a dictionary-encoded page's values are each at most its chunk's
  dictionary page (D bytes: a 1 MiB value in every row is stored once);
- a PLAIN or DELTA_LENGTH_BYTE_ARRAY page's values are stored whole in it:
  all of them together at most its decoded size (U bytes);
- any other page's (DELTA_BYTE_ARRAY's shared prefixes) each at most U.

Sized by the dictionary alone, a chunk with no dictionary page was read
65,536 rows a batch: a 33 KB file of 600 rows of one 1 MiB value, stored
PLAIN and compressed, took the job process checking it to 1.4 GB (and 6,000
rows to past 10 GB). So a batch is as many rows as neither a chunk's
dictionary-encoded rows nor any run of its other pages' rows can pass
PLAIN_BATCH by these bounds (at least 1: twice PLAIN_BATCH at most). A chunk whose dictionary page is
past PLAIN_DICTIONARY is read plain too, a few rows (or one) a batch, as
long as its row group makes at most MAX_BATCHES of them: read as a
dictionary, a Cairn file of 1,024 rows of 1 MiB texts (a 1 GiB dictionary
page) took pyarrow 4.9 GB, plain a row at a time 2.9 GB. Past that, and
where the pages cannot be told (a dictionary page not first: pyarrow
decodes one anywhere, whatever the footer says; more than MAX_PAGES pages),
its column is read as a dictionary."""

from __future__ import annotations

import contextlib
from typing import IO, Any

import pyarrow.parquet as pq

from . import footer_guard

BATCH_ROWS = 65_536  # at most (contents.BATCH_ROWS)
PLAIN_DICTIONARY = 4 << 20  # a dictionary page past this: the column is read as a dictionary
PLAIN_BATCH = 128 << 20  # what a plain batch of a chunk's rows may decode to, at most
MAX_PAGES = 10_000
MAX_BATCHES = 4_096  # a row group's plain batches at most, its dictionary past PLAIN_DICTIONARY
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3  # PageType
WHOLE = {0, 6}  # PLAIN, DELTA_LENGTH_BYTE_ARRAY: a page's values together at most its size
BY_DICTIONARY = {2, 8}  # PLAIN_DICTIONARY, RLE_DICTIONARY


def plain_text(source: str | IO[bytes], text: list[str]) -> tuple[set[str], list[int], Any]:
    """The text columns (not keys) that can be read plain, each row group's
    batch rows for them, and the footer read here (handed on, not read
    again). Anything unreadable: no column plain."""
    if not text:
        return set(), [], None
    try:
        meta = pq.read_metadata(source)
    except Exception:  # noqa: BLE001 - the reader that follows says what is wrong
        return set(), [], None
    at = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    plain, rows = set(text), []
    try:
        with open(source, "rb") if isinstance(source, str) else contextlib.nullcontext(source) as f:
            for g in range(meta.num_row_groups):
                most = BATCH_ROWS
                for n in text:
                    found = _pages(f, meta.row_group(g).column(at[n]))
                    if found is not None and found[1] > PLAIN_DICTIONARY and (
                            meta.row_group(g).num_rows > MAX_BATCHES * batch_rows(*found)):
                        found = None  # (too many small batches: read as a dictionary)
                    if found is None:
                        plain.discard(n)
                    else:
                        most = min(most, batch_rows(*found))
                rows.append(most)
        return plain, rows, meta
    except Exception:  # noqa: BLE001 - what cannot be told is read as a dictionary
        return set(), [], meta
    finally:
        if not isinstance(source, str):
            source.seek(0)


def batch_rows(pages: list[tuple[int, int, int]], dictionary: int = 0) -> int:
    """A batch's rows for a chunk: its dictionary-encoded rows each at most
    its `dictionary` page's bytes (one dictionary a chunk), so at most
    PLAIN_BATCH / `dictionary` of them (1 at least: a dictionary past
    PLAIN_BATCH, a row at a time); and no run of its other `pages` (each: its values,
    the bytes one decodes to at most, all of them at most) past PLAIN_BATCH
    (a power of two, 1 at least). A batch then decodes to at most twice
    PLAIN_BATCH."""
    rows = max(1, min(BATCH_ROWS, PLAIN_BATCH // dictionary)) if dictionary else BATCH_ROWS
    while rows > 1 and _largest_run(pages, rows) > PLAIN_BATCH:
        rows //= 2
    return rows


def _largest_run(pages: list[tuple[int, int, int]], rows: int) -> int:
    """An upper bound of what any `rows` consecutive rows of `pages` decode
    to: from each page, it and the pages after it until `rows` - 1 rows are
    past it, each wholly (at most its rows in the run times its per row)."""
    cost = [min(min(rows, values) * per_row, whole) for values, per_row, whole in pages]
    largest = total = after = 0  # after: the rows of pages[i + 1 .. j - 1]
    j = 0
    for i in range(len(pages)):
        if j <= i:
            j, total, after = i + 1, cost[i], 0
        while j < len(pages) and after < rows - 1:  # (the run has a row in page i)
            total += cost[j]
            after += pages[j][0]
            j += 1
        largest = max(largest, total)
        total -= cost[i]
        if i + 1 < j:
            after -= pages[i + 1][0]
    return largest


def _pages(f: IO[bytes], chunk: Any) -> tuple[list[tuple[int, int, int]], int] | None:
    """(values, bytes a row at most, bytes of all its rows at most) of each
    data page of `chunk` not dictionary-encoded, and its dictionary page's
    size (0: none), from its pages' headers; None if that page is not its
    first, or a header cannot be read, or past MAX_PAGES pages."""
    offsets = [o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o is not None]
    at = min(offsets)
    end, dictionary = at + chunk.total_compressed_size, 0
    out: list[tuple[int, int, int]] = []
    for i in range(MAX_PAGES):
        if at >= end:
            return out, dictionary
        for want in (4 << 10, 64 << 10, 1 << 20):  # a header holds its page's statistics
            f.seek(at)
            reader = footer_guard.page_reader(f.read(want))
            try:
                page = reader.struct()
                break
            except footer_guard.Malformed:
                if want == 1 << 20:
                    return None
        # An uncompressed page's size is its compressed size (pyarrow ignores
        # the other); a compressed one must decompress to its uncompressed.
        size = max(int(page.get(2) or 0), int(page.get(3) or 0))
        kind = page.get(1)
        if kind == DICTIONARY_PAGE:
            if i:
                return None
            dictionary = size
        elif kind in (DATA_PAGE, DATA_PAGE_V2):
            header = page.get(5 if kind == DATA_PAGE else 8)
            header = header if isinstance(header, dict) else {}
            values = max(0, int(header.get(1) or 0))
            encoding = header.get(2 if kind == DATA_PAGE else 4)
            if encoding not in BY_DICTIONARY:  # (those: batch_rows's dictionary)
                out.append((values, size, size if encoding in WHOLE else values * size))
        at += reader.at + int(page.get(3) or 0)  # the header, then its compressed bytes
    return None
