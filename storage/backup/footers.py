"""How large a backed-up file's Parquet footer may be: one rule, applied by
BACKUP to the files it stores, and by VERIFY and RESTORE to what they read.

A footer comes from the target, so it is hostile input: read whole into
memory, then decoded (in Python by footer_guard, then by pyarrow, ~900
bytes a column chunk). A fixed bound of 1 MiB was too small for Cairn's own
files: a footer takes ~190 bytes a column per row group, up to ~8.3 KiB with
TEXT values of 4 KiB (Arrow writes a column's min and max while each is at
most 4,096 bytes), so a table of 4,091 columns and one flushed row backed
up and could not be restored. So the bound is the most a file of its entry's
shape can hold, from the manifest (which the decoder range-checks): its
Parquet columns (the schema version's columns and Cairn's own) and the row
groups a file of its rows can have (a row group holds MIN_ROW_GROUP_ROWS
rows at least, but the last). A footer past it is refused whatever its
table, and so is one past MAX_BYTES or past MAX_CHUNKS column chunks (what
one restore decodes at most). Cairn writes no file past them (a flush of
very many rows of a very wide table is several files: storage/fileparts.py),
and BACKUP measures each file it stores by the same rule and refuses, before
storing any, a file whose footer a restore would refuse (`refusal`; one
flushed in one piece by an older Cairn): a backup Cairn writes restores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.errors import InvalidArgument

from ..files import MIN_ROW_GROUP_ROWS
from .image import NamespaceImage
from .schema import FileEntry, TableEntry
from .sources import source_errors

STATS_BYTES = 4096  # Arrow's max_statistics_size: a longer min or max is not written
CHUNK_BYTES = 2 * STATS_BYTES + 512  # a column chunk's entry: min, max and the rest
COLUMN_BYTES = 1024  # a column's schema element, order and ARROW:schema field
BASE_BYTES = 64 << 10  # the rest: key-value metadata, created_by, ...
MAX_BYTES = (64 << 20) - 8  # with its length and magic, copyloop.MAX_KEEP
MAX_CHUNKS = 1 << 17  # column chunks (row groups x columns): 4,096 columns x 32 row groups


@dataclass(frozen=True)
class Bound:
    """What a file's footer may hold: `bytes` (the footer alone), its schema
    exactly `columns` Parquet columns, at most `groups` row groups."""

    bytes: int
    columns: int
    groups: int

    @property
    def tail(self) -> int:
        """The bytes of the file's end to read: the footer, its length, the magic."""
        return self.bytes + 8


def columns_of(table: TableEntry, version: int) -> int:
    """The Parquet columns of a file of schema `version` (contents.expected_schema)."""
    return 2 + (table.table_type == "user") + len(table.schema(version).columns)


def bound(table: TableEntry, f: FileEntry) -> Bound:
    columns = columns_of(table, f.schema_version)
    groups = max(1, -(-f.rows // MIN_ROW_GROUP_ROWS))
    size = BASE_BYTES + columns * (COLUMN_BYTES + groups * CHUNK_BYTES)
    return Bound(min(MAX_BYTES, size), columns, max(1, min(groups, MAX_CHUNKS // columns)))


def tail_for(uses: list[tuple[FileEntry, TableEntry]]) -> int:
    """The end of an object to keep for the files that use it (0: none)."""
    return max((bound(t, f).tail for f, t in uses), default=0)


def refusal(table: TableEntry, f: FileEntry, path: Path, data: bytes | None) -> str | None:
    """Why a restore would refuse the footer of a file BACKUP is about to
    store (its bytes `data`, or the file at `path`), or None. Cairn's own
    files are past their bound only by MAX_BYTES or MAX_CHUNKS."""
    b = bound(table, f)
    if data is not None:
        end = data[-8:]
    else:
        with source_errors(str(path)), open(str(path), "rb") as src:  # gone: BACKUP_INVALID
            src.seek(-8, 2)
            end = src.read(8)
    size = int.from_bytes(end[:4], "little")
    if size > b.bytes:
        return (f"a file of table '{table.name}' ({f.rows} rows, {b.columns} columns) has a "
                f"Parquet footer of {size} bytes, over the {b.bytes} a restore reads")
    if b.columns * max(1, -(-f.rows // MIN_ROW_GROUP_ROWS)) <= MAX_CHUNKS:
        return None  # its row groups are within the bound whatever they are
    meta = pq.read_metadata(pa.BufferReader(data) if data is not None else str(path))
    if meta.num_row_groups > b.groups:
        return (f"a file of table '{table.name}' ({f.rows} rows, {b.columns} columns) has "
                f"{meta.num_row_groups} row groups, {meta.num_row_groups * b.columns} column "
                f"chunks, over the {MAX_CHUNKS} a restore reads")
    return None


def check(images: list[NamespaceImage]) -> None:
    """INVALID_ARGUMENT before any file is stored if a restore would refuse
    the footer of one of the images' files (`refusal`: 8 bytes read a file,
    its footer too for a file of very many rows of many columns)."""
    for image in images:
        tables = {id(f): t for t in image.tables for f in t.files}
        for item in image.files:
            wrong = refusal(tables[id(item.entry)], item.entry, item.path, item.data)
            if wrong is not None:
                raise InvalidArgument(
                    f"cannot back up namespace '{image.namespace}': {wrong} (docs/backup-format.md, "
                    "'Footers'). Copy the table into a new one, whose flushes write files a "
                    "restore reads (CREATE TABLE, then INSERT INTO ... SELECT)")
