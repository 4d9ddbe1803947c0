"""A Parquet footer from a target, checked in Python before pyarrow reads it.

pyarrow does not refuse every malformed footer: some it answers with
`std::terminate`, which ends the process. A RESTORE of a 2 KB crafted object
aborted the whole server (SIGABRT), from `ColumnChunkMetaData.statistics` of
a footer whose INT64 statistics were 3 bytes long, whose column chunk's type
was not its schema column's, or whose SizeStatistics histogram had the wrong
length (found by an attacker's footer fuzzer). So the footer's Thrift is
decoded here first (the compact protocol, bounded: the footer is at most
what footers.bound gives its entry, its schema that entry's columns, its row
groups no more than the entry's rows can fill, each decoded and checked in
turn, and at most VALUES_PER_COLUMN / VALUES_PER_CHUNK Thrift values a
column and a column chunk: a forged footer of tiny values decodes to no
more than Cairn's own of its shape) and those fields are checked against
what Cairn's writer makes.

The same pass refuses what Cairn never writes and DuckDB would trust: bloom
filters and page indexes. DuckDB skips rows by them, and a forged one hid a
key from SELECT and let INSERT write it a second time, while the row-group
statistics the other checks read stayed true. So is a footer with row-group
statistics whose `created_by` names another writer than Cairn's
(parquet-cpp-arrow): pyarrow ignores the statistics of a string column a
"parquet-mr version 1.8.0" wrote (PARQUET-251), so the checks compared
nothing, while DuckDB skipped the row group by them (`WHERE v = 'a'` missed
a restored row). And so is one with statistics whose `column_orders` are not
each column's type-defined order, as Cairn's writer writes them: without
them pyarrow takes the sort order as unknown and ignores every min and max.

And the two readers must start each column chunk at the same page. pyarrow
starts at the dictionary page's offset only when it lies before the first
data page's; DuckDB starts at it wherever it lies. A file holding each
column's rows twice (a second data page), saying it held them once, with one
chunk's dictionary offset at its second data page verified valid (pyarrow
read 'a', 'b', 'c') and restored, and every query read 'EVIL-a'... instead.
"""

from __future__ import annotations

import struct
from typing import Any

# Parquet physical types (parquet.thrift `Type`) and their values' widths.
BOOLEAN, INT32, INT64, INT96, FLOAT, DOUBLE, BYTE_ARRAY, FIXED = range(8)
_WIDTH = {BOOLEAN: 1, INT32: 4, INT64: 8, INT96: 12, FLOAT: 4, DOUBLE: 8}
_OPTIONAL = 1  # FieldRepetitionType
_ENCODINGS = {0, 2, 3, 4, 5, 6, 7, 8, 9}  # Encoding (1, GROUP_VAR_INT, was never written)
_PAGE_TYPES = {0, 1, 2, 3}  # PageType
_CODECS = set(range(8))  # CompressionCodec
_MAX_DEPTH = 16
# Thrift values decoded at most (check, with the columns given): a column's
# schema element and order (Cairn's take 7), a column chunk's entry (Cairn's
# take ~40), and the rest.
VALUES_PER_COLUMN = 32
VALUES_PER_CHUNK = 128
VALUES_BASE = 4096


class Malformed(ValueError):
    """The footer is not what Cairn's writer makes (the message says how)."""


class _Reader:
    """Thrift's compact protocol over `data`: structs as {field id: value}."""

    def __init__(self, data: bytes, values: int | None = None,
                 what: str = "a footer of its columns and rows") -> None:
        self.data, self.at = data, 0
        self.values = values  # how many more values may be decoded (None: any)
        self.what = what  # what holds at most that many

    def _byte(self) -> int:
        if self.at >= len(self.data):
            raise Malformed("ends inside a value")
        self.at += 1
        return self.data[self.at - 1]

    def _varint(self) -> int:
        shift = value = 0
        while True:
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise Malformed("holds a number past 64 bits")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _length(self) -> int:
        n = self._varint()
        if n > len(self.data) - self.at:  # every element takes a byte at least
            raise Malformed("claims more values than it holds")
        return n

    def value(self, kind: int, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise Malformed("nests too deeply")
        if self.values is not None:
            self.values -= 1
            if self.values < 0:
                raise Malformed(f"holds more values than {self.what}")
        if kind in (1, 2):
            return kind == 1
        if kind == 3:
            return struct.unpack("b", bytes([self._byte()]))[0]
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            if self.at + 8 > len(self.data):
                raise Malformed("ends inside a value")
            self.at += 8
            return None
        if kind == 8:
            n = self._length()
            self.at += n
            return self.data[self.at - n:self.at]
        if kind in (9, 10):
            head = self._byte()
            n, element = head >> 4, head & 0x0F
            if n == 15:
                n = self._length()
            if element in (1, 2):
                return [self._byte() == 1 for _ in range(n)]
            return [self.value(element, depth + 1) for _ in range(n)]
        if kind == 11:
            n = self._length()
            if n:
                head = self._byte()
                for _ in range(n):
                    self.value(head >> 4, depth + 1)
                    self.value(head & 0x0F, depth + 1)
            return None
        if kind == 12:
            return self.struct(depth + 1)
        raise Malformed(f"holds a Thrift value of unknown type {kind}")

    def struct(self, depth: int = 0) -> dict[int, Any]:
        out: dict[int, Any] = {}
        last = 0
        while (head := self._byte()) != 0:
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self._zigzag()
            if last in out:
                # pyarrow's and DuckDB's Thrift (C++) keep a field's last value
                # of the type it is declared with and skip any other; this
                # reader keeps its last value of any type. Said twice, as an
                # i32 BIT_PACKED then an i8 RLE, a page's level encoding was
                # BIT_PACKED to the readers and RLE to the checks here.
                raise Malformed(f"holds its field {last} twice (Cairn's writer writes each once)")
            out[last] = self.value(kind, depth)
        return out


def check(footer: bytes, columns: int | None = None, groups: int | None = None,
          text_bounds: dict[tuple[int, int], tuple[Any, Any]] | None = None,
          ) -> list[dict[int, Any]]:
    """The schema's leaves (its columns' SchemaElements, as {field id: value});
    raise Malformed unless the Thrift FileMetaData `footer` is decodable,
    its schema flat (of exactly `columns` leaves, if given), at most `groups`
    row groups (if given), every column chunk of the schema's type, with
    statistics as wide as the type and SizeStatistics as long as its levels,
    and no bloom filter or page index. With `columns`, the values decoded
    are bounded by the columns and row groups (module docstring).
    `text_bounds`, if given, gets each BYTE_ARRAY chunk's statistics, as
    (row group, leaf): (min, max), None where absent (onesided.py)."""
    budget = None
    if columns is not None:
        budget = VALUES_BASE + VALUES_PER_COLUMN * columns
    reader = _Reader(footer, budget)
    leaves: list[dict[int, Any]] | None = None
    found = None
    bounded = False  # some chunk has min/max statistics
    created_by = None
    orders = None
    last = 0
    seen: set[int] = set()
    while (head := reader._byte()) != 0:  # FileMetaData, its row groups one at a time
        kind, delta = head & 0x0F, head >> 4
        last = last + delta if delta else reader._zigzag()
        if last in seen:  # (row groups checked against one schema, read with another)
            raise Malformed(f"holds its field {last} twice")
        seen.add(last)
        if last == 4 and kind in (9, 10):
            if leaves is None:
                raise Malformed("has row groups before its schema")
            found, bounded = _row_groups(reader, leaves, groups, columns, text_bounds)
            continue
        value = reader.value(kind, 1)
        if last == 2:
            leaves = _leaves(value, columns)
        elif last == 6:
            created_by = value
        elif last == 7:
            orders = value
    if leaves is None:
        raise Malformed("has no schema")
    if found is None:
        raise Malformed("has no row groups")
    if bounded and created_by is not None and not (
            isinstance(created_by, bytes) and created_by.startswith(WRITER)):
        shown = created_by.decode("utf-8", "replace")[:80] if isinstance(
            created_by, bytes) else "?"
        raise Malformed(f"says it was written by '{shown}', not by Cairn's writer "
                        "(parquet-cpp-arrow): pyarrow ignores some such statistics, which "
                        "DuckDB skips row groups by")
    if bounded and orders != [{1: {}}] * len(leaves):  # ColumnOrder TYPE_ORDER each
        raise Malformed("has statistics but not the column orders Cairn's writer writes: "
                        "pyarrow ignores such statistics, which DuckDB skips row groups by")
    return leaves


WRITER = b"parquet-cpp-arrow version "  # pyarrow's created_by, whose statistics it trusts


def _leaves(schema: Any, columns: int | None) -> list[dict[int, Any]]:
    if not isinstance(schema, list) or not schema or not all(isinstance(e, dict) for e in schema):
        raise Malformed("has no schema")
    leaves = schema[1:]
    if schema[0].get(5) != len(leaves) or any(5 in e and e[5] for e in leaves):
        raise Malformed("has a nested schema (Cairn's tables are flat)")
    if columns is not None and len(leaves) != columns:
        raise Malformed(f"has {len(leaves)} columns, its table's file {columns}")
    return leaves


def _row_groups(reader: _Reader, leaves: list[dict[int, Any]], groups: int | None,
                columns: int | None,
                text_bounds: dict[tuple[int, int], tuple[Any, Any]] | None = None,
                ) -> tuple[int, bool]:
    """Decode and check the row groups list `reader` is at, one group at a
    time (none kept); how many there were, and whether a chunk has min/max
    statistics."""
    bounded = False
    head = reader._byte()
    n, element = head >> 4, head & 0x0F
    if n == 15:
        n = reader._length()
    if groups is not None and n > groups:
        raise Malformed(f"has {n} row groups, more than a file of its rows holds ({groups})")
    for g in range(n):
        if columns is not None:  # a fresh budget: the last group's values are gone
            reader.values = VALUES_PER_CHUNK * columns + VALUES_BASE
        group = reader.value(element, 1)
        chunks = group.get(1) if isinstance(group, dict) else None
        if not isinstance(chunks, list) or len(chunks) != len(leaves):
            raise Malformed(f"has row group {g} with other columns than its schema")
        for i, (leaf, chunk) in enumerate(zip(leaves, chunks, strict=True)):
            has = _check_chunk(leaf, chunk, g)
            bounded = has or bounded
            if has and text_bounds is not None and leaf.get(1) == BYTE_ARRAY:
                stats = chunk[3][12]  # ColumnMetaData.statistics: min_value, max_value
                text_bounds[(g, i)] = (stats.get(6, stats.get(2)), stats.get(5, stats.get(1)))
    return n, bounded


def _check_chunk(leaf: dict[int, Any], chunk: Any, g: int) -> bool:
    """Malformed unless the chunk is as Cairn writes it; whether it has a
    min or max statistic."""
    name = leaf[4].decode("utf-8", "replace")[:64] if isinstance(leaf.get(4), bytes) else "?"
    where = f"column '{name}' of row group {g}"
    meta = chunk.get(3) if isinstance(chunk, dict) else None
    if not isinstance(meta, dict):
        raise Malformed(f"has no metadata for {where}")
    if any(k in chunk for k in (4, 5, 6, 7)) or any(k in meta for k in (14, 15)):
        raise Malformed(f"has a page index or a bloom filter for {where} (Cairn writes neither)")
    if 1 in chunk:  # ColumnChunk.file_path: the chunk's data in another file
        raise Malformed(f"puts {where} in another file")
    if meta.get(3) != [leaf.get(4)]:  # path_in_schema: an empty one aborted pyarrow too
        raise Malformed(f"names {where} otherwise in its chunk than in its schema")
    if meta.get(5) != 0 and _start_for_pyarrow(meta) != _start_for_duckdb(meta):
        # (a chunk of no values, as pyarrow writes an empty table's, has a
        # dictionary page at 4 and its data page offset 0: nothing to read)
        raise Malformed(f"puts the dictionary page of {where} after its first data page: "
                        "the checks (pyarrow) would read the chunk from one page, every "
                        "query (DuckDB) from another")
    encodings = meta.get(2)
    stats_of_pages = meta.get(13) or []
    if (not isinstance(encodings, list) or not set(encodings) <= _ENCODINGS
            or meta.get(4) not in _CODECS or not isinstance(stats_of_pages, list)
            or not all(isinstance(p, dict) and p.get(1) in _PAGE_TYPES and p.get(2) in _ENCODINGS
                       for p in stats_of_pages)):
        raise Malformed(f"names an encoding, page type or codec of {where} Parquet has not")
    kind = leaf.get(1)
    if meta.get(1) != kind:
        raise Malformed(f"stores {where} as type {meta.get(1)}, its schema as {kind}")
    width = leaf.get(2) if kind == FIXED else _WIDTH.get(kind)  # type: ignore[arg-type]
    stats = meta.get(12)
    if isinstance(stats, dict) and any(stats.get(old) != stats.get(new)
                                       for old, new in ((1, 5), (2, 6)) if old in stats):
        # pyarrow ignores the deprecated max and min where min_value and
        # max_value are missing; DuckDB skips row groups by them: forged so,
        # `WHERE n = 11` missed a row the checks had read (Cairn's writer
        # writes them equal to the new ones, or not at all).
        raise Malformed(f"has deprecated statistics (max, min) of {where} that are not its "
                        "max_value and min_value")
    if isinstance(stats, dict) and width is not None:
        for field in (1, 2, 5, 6):  # max, min, max_value, min_value
            value = stats.get(field)
            if value is not None and (not isinstance(value, bytes) or len(value) != width):
                raise Malformed(f"has statistics of {where} that are not {width} bytes")
            if kind == BOOLEAN and value not in (None, b"\x00", b"\x01"):
                # pyarrow reads a BOOLEAN statistic's lowest bit, DuckDB any
                # byte but 0 as true: a minimum of 0x02 was false to the
                # checks and true to `WHERE b = false`, which skipped the row
                # group (Cairn's writer writes 0 or 1).
                raise Malformed(f"has statistics of {where} that are not a BOOLEAN's 0 or 1: "
                                "the checks (pyarrow) read their lowest bit, every query "
                                "(DuckDB) any other byte as true")
    sizes = meta.get(16)
    if isinstance(sizes, dict):
        levels = 2 if leaf.get(3) == _OPTIONAL else 1
        for field, want in ((2, (0, 1)), (3, (0, levels))):  # repetition, definition
            histogram = sizes.get(field)
            if histogram is not None and (not isinstance(histogram, list)
                                          or len(histogram) not in want):
                raise Malformed(f"has level histograms of {where} of the wrong length")
    return isinstance(stats, dict) and any(k in stats for k in (1, 2, 5, 6))


def _start_for_pyarrow(meta: dict[int, Any]) -> Any:
    """Where pyarrow starts reading a column chunk: its dictionary page's
    offset if set, positive and before its first data page's, else that."""
    data, dictionary = meta.get(9), meta.get(11)
    if (isinstance(dictionary, int) and isinstance(data, int)
            and 0 < dictionary < data):
        return dictionary
    return data


def _start_for_duckdb(meta: dict[int, Any]) -> Any:
    """Where DuckDB starts reading it: its dictionary page's offset whenever
    that is set and at least 4 (past the leading magic), wherever it lies."""
    dictionary = meta.get(11)
    if isinstance(dictionary, int) and dictionary >= 4:
        return dictionary
    return meta.get(9)


def page_reader(data: bytes) -> _Reader:
    """A reader of the Thrift PageHeader at the start of `data`: `.struct()`
    (1: type, 2: uncompressed size, 3: compressed size; Malformed if it does
    not decode, or holds more than VALUES_PER_PAGE values), then `.at`, the
    header's length."""
    return _Reader(data, VALUES_PER_PAGE, "a page header of Cairn's writer")


# Thrift values a page header holds at most: Cairn's writer's take ~20 (its
# sizes, counts, encodings, statistics). Unbounded, a header of a million
# empty structs in a field no reader knows (1 MB, which pyarrow and DuckDB
# skip in a blink) took 1.3 s to decode here, once a page a row.
VALUES_PER_PAGE = 256
