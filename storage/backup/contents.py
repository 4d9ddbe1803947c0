"""What a backed-up file holds must be what its manifest says it holds.

A checksum proves the bytes are the ones the manifest names, not that they are
the file the manifest describes: whoever can write a target can rename a column
in a manifest and re-seal it, or store a Parquet file of other columns, other
rows or other users under a valid sha256. Such a restore would install a table
that no query can read, or rows that overtake every later write.

So every file is checked against its entry, first from its Parquet footer (the
end of the file): the Arrow schema is exactly the stored schema of its schema
version (hidden columns, then every column, with their Arrow types), the row
count is the entry's, and the footer's statistics put every `_seq` within the
entry's `min_seq..max_seq`, every key within the entry's `key_range` (point
lookups skip files by it) and, in a USER table, every `_user` equal to the
entry's user (`problem`). The statistics are the writer's word, and whoever
writes the target writes them: a file whose footer put its keys 1..3 while it
held 100..102 passed, was restored, hid its rows from point lookups and took
a second row of the same key. So those columns are then read from the file
itself, batch by batch, and their values held to the same bounds
(`values_problem`). RESTORE applies both to each fetched file, VERIFY to the
content of each object as it rereads it (`Capture` keeps it, in a temporary
file past a few MiB): the same functions, so they agree."""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.diskerrors import DataDirUnavailable, read_shortage

from ..files import NAN_RULE
from ..types import OW, SEQ, USER, arrow_type
from . import (
    check_reader,
    duck_read,
    footer_guard,
    footers,
    onesided,
    page_headers,
    page_stats,
    parquet_types,
    text_batches,
)
from .check_reader import CheckReader
from .column_checks import Group
from .rowchecks import Checks, outside
from .rowversions import Versions
from .schema import FileEntry, TableEntry

TAIL = 1 << 20  # a Tail's default length; what a footer may take is footers.bound
MAGIC = b"PAR1"
SPOOL_MEMORY = 8 << 20  # a Capture keeps this much in memory, the rest in a temporary file
BATCH_ROWS = 65_536  # values_problem reads this many rows at a time
# The text of a file's key (and `_user`) values, decoded, may be at most this
# many times the file's size, plus KEY_BYTES_SLACK. Parquet stores a repeated
# value once (a dictionary) and compresses it: 6,000 rows of one 1 MiB key
# took 13 KB and 6 GiB to read. Cairn's own files hold 1 to 20 times
# (docs/backup-format.md).
KEY_BYTES_RATIO = 64
KEY_BYTES_SLACK = 64 << 20


class Tail:
    """The last `limit` bytes of a stream, fed chunk by chunk; quacks like a
    hashlib digest so it can ride along with one (`Teed`). `limit` is what
    the footers of the files using the content may take (footers.tail_for)."""

    def __init__(self, limit: int = TAIL) -> None:
        self.limit = limit
        self.data = bytearray()
        self.whole: bytes | None = None  # the tail handed over at once (`take`)

    def update(self, chunk: Any) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.limit:
            del self.data[: len(self.data) - self.limit]

    def take(self, last: bytes) -> None:
        """The stream's last bytes at once (a copier's, copier.check), kept
        without a copy: on the job's thread every copy of up to 1 MiB holds the
        GIL that statements wait for."""
        self.whole = last[-self.limit:] if self.limit else b""

    def close(self) -> None:
        """Nothing to release (a Capture has its spool)."""

    def bytes(self) -> bytes:
        if self.whole is not None:
            return self.whole
        if not self.limit:
            return b""
        return bytes(memoryview(self.data)[-self.limit:])


class Capture(Tail):
    """A Tail that keeps the whole content too, for `values_problem`: in memory
    up to SPOOL_MEMORY, past it in a temporary file under `scratch_dir`.
    `complete` is False when only the end was handed over (`take`: a copier
    read the object; the object itself is then a local raw file)."""

    def __init__(self, scratch_dir: str | None = None, limit: int = TAIL) -> None:
        super().__init__(limit)
        self.spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=SPOOL_MEMORY, dir=scratch_dir)
        self.complete = True

    def update(self, chunk: Any) -> None:
        super().update(chunk)
        self.spool.write(chunk)

    def take(self, last: bytes) -> None:
        super().take(last)
        self.complete = False

    def content(self) -> IO[bytes] | None:
        """The whole content from its start, or None if it was not seen."""
        if not self.complete:
            return None
        self.spool.seek(0)
        return self.spool

    def close(self) -> None:
        self.spool.close()


class Teed:
    """A digest that also feeds a Tail."""

    def __init__(self, digest: Any, tail: Tail) -> None:
        self.digest, self.tail = digest, tail

    def update(self, chunk: Any) -> None:
        self.digest.update(chunk)
        self.tail.update(chunk)

    def hexdigest(self) -> str:
        return str(self.digest.hexdigest())


def tail_of(path: str, limit: int = TAIL) -> bytes:
    """The last `limit` bytes of a local file (footers.Bound.tail)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - limit))
        return f.read()


def expected_schema(table: TableEntry, version: int) -> list[tuple[str, pa.DataType]]:
    fields = [(SEQ, pa.int64()), (OW, pa.bool_())]
    if table.table_type == "user":
        fields.append((USER, pa.string()))
    for c in table.schema(version).columns:
        fields.append((c.name, arrow_type(msgspec.to_builtins(c))))
    return fields


def problem(tail: bytes, f: FileEntry, table: TableEntry) -> str | None:
    """None when the file whose content ends with `tail` is what `f` says, else
    what is wrong (a sentence naming the file and its table)."""
    what = f"file {f.content_sha256} of table '{table.name}'"
    if len(tail) < 12 or tail[-4:] != MAGIC:
        return f"{what} is not a Parquet file"
    footer = int.from_bytes(tail[-8:-4], "little")
    most = footers.bound(table, f)
    if footer > most.bytes:
        return (f"{what} has a Parquet footer of {footer} bytes (at most {most.bytes} accepted "
                f"for a file of {f.rows} rows and {most.columns} columns)")
    if footer + 8 > len(tail):
        return f"{what} claims a Parquet footer of {footer} bytes, longer than the file"
    try:  # before pyarrow, which aborts the process on some malformed footers
        leaves = footer_guard.check(tail[-(footer + 8):-8], most.columns, most.groups)
    except footer_guard.Malformed as exc:
        return f"{what}: its Parquet footer {exc}"
    try:
        meta = pq.read_metadata(pa.BufferReader(MAGIC + tail[-(footer + 8):]))
        schema = meta.schema.to_arrow_schema()
    except Exception as exc:  # noqa: BLE001 - any footer pyarrow cannot read is damage
        if (short := read_shortage(exc, f"cannot check {what}")) is not None:
            raise short from exc  # out of memory (or files) now: no damage
        return f"{what} has an unreadable Parquet footer ({type(exc).__name__})"
    got = [(field.name, field.type) for field in schema]
    want = expected_schema(table, f.schema_version)
    if got != want:
        return (f"{what} holds columns {_show(got)}, but schema version {f.schema_version} "
                f"stores {_show(want)}")
    wrong = (parquet_types.problem(leaves, want)  # DuckDB reads the same types
             or parquet_types.metadata_problem(meta.metadata))
    if wrong is not None:
        return f"{what} {wrong}"
    if meta.num_rows != f.rows:
        return f"{what} holds {meta.num_rows} rows, its entry says {f.rows}"
    bounds = _bounds(f)
    for name, (low, high) in bounds.items():
        index = schema.get_field_index(name)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if group.num_rows == 0:
                continue
            stats = group.column(index).statistics
            if stats is None or not stats.has_min_max or stats.null_count:
                return f"{what} gives no complete statistics for {name}"
            try:
                stats_low, stats_high = stats.min, stats.max
            except ValueError:  # UnicodeDecodeError: a TEXT key's bytes that are no UTF-8
                return f"{what} gives statistics for {name} that do not decode"
            if stats_low < low or stats_high > high:
                return (f"{what} holds {name} values {stats.min!r}..{stats.max!r}, "
                        f"outside its entry's {low!r}..{high!r}")
    # Cairn never writes NULL into a NOT NULL column (a DELETE's row version
    # keeps the row's values): a manifest re-sealed with `not_null` on a
    # column that holds NULLs restored a table whose NOT NULL column held
    # them, and VERIFY called it valid. The footer's null counts, the
    # writer's word like its other statistics: a file forged to hide them
    # is not caught (docs/backup-format.md). Keys and Cairn's own columns are
    # read back from the values (`values_problem`).
    for c in table.schema(f.schema_version).columns:
        if not c.not_null or c.primary_key or c.system:
            continue
        index = schema.get_field_index(c.name)
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics
            if stats is not None and stats.has_null_count and stats.null_count:
                return (f"{what} holds {stats.null_count} NULL values in column "
                        f"'{c.name}', NOT NULL in schema version {f.schema_version}")
    return None


def values_problem(source: str | IO[bytes], f: FileEntry, table: TableEntry) -> str | None:
    """None when the file's own `_seq`, `_user` and key values are within its
    entry's bounds and within each row group's statistics (what `problem`
    read in the footer alone: lookups skip files, and DuckDB row groups, by
    them), and its rows are row versions Cairn could have written (no NULL
    in its own columns, no `_seq` twice, no key with two first versions:
    rowversions.py; every column as its type holds it: rowchecks.py), else
    what is wrong. Call it after `problem` found nothing. BATCH_ROWS rows
    are read at a time."""
    what = f"file {f.content_sha256} of table '{table.name}'"
    bounds = _bounds(f)
    user = [USER] if table.table_type == "user" else []
    names = list(dict.fromkeys([*bounds, *user, *table.primary_key]))
    checks = Checks(table, f.schema_version)  # the same set as `names`: checks.bounded
    versions = Versions(checks.keys)
    rows = 0
    try:
        budget = KEY_BYTES_RATIO * _size(source) + KEY_BYTES_SLACK
        everything = list(checks.columns)
        text = [n for n, c in checks.columns.items() if c.type in ("TEXT", "JSON", "BYTES")]
        # Column chunks read 1 MiB at a time, not whole (every column is read:
        # a restore's peak RSS went +13 MB -> +350 MB with whole chunks).
        plain, plain_rows, meta = _plain_text(source, text)
        with CheckReader(source, names + [n for n in text if n not in plain],
                         buffer_size=1 << 20, metadata=meta) as pf:
            footer = pf.metadata  # (page_headers walks its chunks)
            index = {pf.metadata.schema.column(i).path: i for i in range(pf.metadata.num_columns)}
            arrow = pf.schema_arrow  # built on each access: once, not a column
            texts = {n for n in names if _text(arrow.field(n).type)}
            wrong = _claimed_too_large(pf.metadata, [index[n] for n in sorted(texts)], budget)
            if wrong is not None:
                return f"{what} {wrong}"
            nan_rule = NAN_RULE.items() <= (pf.metadata.metadata or {}).items()
            sides = onesided.unreported(source, pf.metadata)  # bounds pyarrow leaves out
            for g in range(pf.metadata.num_row_groups):
                group = pf.metadata.row_group(g)
                said = {n: group.column(index[n]).statistics for n in names}
                others = Group(checks.columns,
                               {n: group.column(index[n]).statistics for n in everything},
                               nan_rule)
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[g],
                                             columns=names + [n for n in everything
                                                              if n not in plain]):
                    rows += batch.num_rows
                    if rows > f.rows:
                        return f"{what} holds more than the {f.rows} rows its entry says"
                    # Sized before decoding: a dictionary holds each value once.
                    for name in texts:
                        budget -= _decoded_size(batch.column(name))
                    if budget < 0:
                        return (f"{what} holds more key text than {KEY_BYTES_RATIO} times its "
                                f"size and {KEY_BYTES_SLACK >> 20} MiB (repeated long keys)")
                    batch = _decoded(batch)
                    if (wrong := _sides(sides, g, batch)) is not None:
                        return f"{what} {wrong}"
                    for name in names:
                        wrong = outside(batch.column(name), name, bounds.get(name), said[name])
                        if wrong is not None:
                            return f"{what} {wrong}"
                    wrong = checks.add(batch, others, versions, skip=plain)
                    if wrong is not None:
                        return f"{what} {wrong}"
                for batch in (pf.iter_batches(batch_size=plain_rows[g], row_groups=[g],
                                              columns=sorted(plain))
                              if plain else ()):
                    if (wrong := _sides(sides, g, batch)) is not None:
                        return f"{what} {wrong}"
                    for name in plain:
                        if (wrong := others.add(name, batch.column(name))) is not None:
                            return f"{what} {wrong}"
                if (wrong := others.done(g)) is not None:
                    return f"{what} {wrong}"
            wrong = versions.done()
            if wrong is None and versions.suspects:
                wrong = versions.confirm(
                    _decoded(b) for b in pf.iter_batches(
                        batch_size=BATCH_ROWS, row_groups=list(range(pf.metadata.num_row_groups)),
                        columns=[*versions.keys, OW]))
            if wrong is not None:
                return f"{what} {wrong}"
    except Exception as exc:  # noqa: BLE001 - any file pyarrow cannot read is damage
        if (short := read_shortage(exc, f"cannot check {what}")) is not None:
            raise short from exc  # out of memory (or files) now: no damage
        return f"{what} cannot be read ({type(exc).__name__})"
    finally:
        versions.close()
        check_reader.release()  # what the decoding took goes back
    if rows != f.rows:
        return f"{what} holds {rows} rows, its entry says {f.rows}"
    # Every page as both readers take it (page_headers.py), then what
    # pyarrow read, DuckDB must read too: queries do (duck_read.py).
    stats: page_stats.Pages = {}
    if (wrong := page_headers.problem(source, footer, stats)) is not None:
        return f"{what} {wrong}"
    side = duck_read.Side(tuple(n for n in text if n not in plain), tuple(sorted(plain)),
                          tuple(plain_rows), meta)
    try:
        # Each page's own statistics against its values: DuckDB skips pages by them.
        if (wrong := page_stats.problem(source, footer, stats, side.dictionary, side.plain,
                                        side.batch_rows, nan_rule)) is not None:
            return f"{what} {wrong}"
        # DuckDB's values compared with pyarrow's, row by row, read as above.
        wrong = duck_read.problem(source, [n for n, _ in expected_schema(table, f.schema_version)],
                                  f.rows, side)
    except DataDirUnavailable as exc:  # short of memory or files: which file's check
        raise DataDirUnavailable(exc.message.replace("a file of the backup", what, 1),
                                 exc.sqlstate) from exc
    return None if wrong is None else f"{what} {wrong}"


# Which text columns are read plain, in batches of how many rows (text_batches.py).
_plain_text = text_batches.plain_text
PLAIN_DICTIONARY, PLAIN_BATCH = text_batches.PLAIN_DICTIONARY, text_batches.PLAIN_BATCH


def _sides(sides: dict[tuple[int, str], tuple[bytes | None, bytes | None]], g: int,
           batch: pa.RecordBatch) -> str | None:
    """A bound of row group `g`'s text statistics pyarrow does not report that
    `batch`'s values break (onesided.py), said; else None."""
    for name in batch.schema.names:
        if (g, name) in sides and (wrong := onesided.outside(batch.column(name),
                                                              sides[(g, name)])) is not None:
            return (f"has statistics of column '{name}' of row group {g} that pyarrow does "
                    f"not read and DuckDB skips row groups by: it {wrong}")
    return None


def _size(source: str | IO[bytes]) -> int:
    if isinstance(source, str):
        return os.path.getsize(source)
    at = source.seek(0, os.SEEK_END)
    source.seek(0)
    return at


def _text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_binary(kind) or pa.types.is_large_binary(kind))


def _claimed_too_large(meta: Any, columns: list[int], budget: int) -> str | None:
    """What the footer itself says the text columns take decompressed (the
    writer's word: an honest bomb is refused before any page is read)."""
    total = sum(meta.row_group(g).column(c).total_uncompressed_size
                for g in range(meta.num_row_groups) for c in columns)
    if total > budget:
        return (f"holds {total} bytes of key text decompressed, more than {KEY_BYTES_RATIO} "
                f"times its size and {KEY_BYTES_SLACK >> 20} MiB")
    return None


def _decoded_size(column: pa.Array) -> int:
    """Bytes of text `column` holds decoded, counted without decoding it."""
    if isinstance(column, pa.DictionaryArray):
        lengths = pc.binary_length(column.dictionary)
        total = pc.sum(pc.take(lengths, column.indices)).as_py()
    else:
        total = pc.sum(pc.binary_length(column)).as_py()
    return int(total or 0)


def _decoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(isinstance(c, pa.DictionaryArray) for c in batch.columns):
        return batch
    columns = [c.dictionary_decode() if isinstance(c, pa.DictionaryArray) else c
               for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _bounds(f: FileEntry) -> dict[str, tuple[Any, Any]]:
    """The columns an entry bounds: `_seq`, a USER table's `_user`, and the keys
    (point lookups skip files by their range)."""
    bounds: dict[str, tuple[Any, Any]] = {SEQ: (f.min_seq, f.max_seq)}
    if f.user_id is not None:
        bounds[USER] = (f.user_id, f.user_id)
    for name, (low, high) in f.key_range.items():
        bounds[name] = (low, high)
    return bounds


def _show(fields: list[tuple[str, pa.DataType]]) -> str:
    return "(" + ", ".join(f"{n} {t}" for n, t in fields) + ")"
