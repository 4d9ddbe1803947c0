"""What a backed-up file holds must be what its manifest says it holds.

A checksum proves the bytes are the ones the manifest names, not that they are
the file the manifest describes: whoever can write a target can rename a column
in a manifest and re-seal it, or store a Parquet file of other columns, other
rows or other users under a valid sha256. Such a restore would install a table
that no query can read, or rows that overtake every later write.

So every file is checked against its entry from its Parquet footer alone (the
end of the file): the Arrow schema is exactly the stored schema of its schema
version (hidden columns, then every column, with their Arrow types), the row
count is the entry's, and the footer's statistics put every `_seq` within the
entry's `min_seq..max_seq`, every key within the entry's `key_range` (point
lookups skip files by it) and, in a USER table, every `_user` equal to the
entry's user. RESTORE applies it to each fetched file, VERIFY to the content of
each object as it rereads it (`Tail` keeps the last bytes): one function, so
they agree."""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from ..types import OW, SEQ, USER, arrow_type
from .schema import FileEntry, TableEntry

TAIL = 1 << 20  # a footer larger than this is refused (Cairn's are a few KiB)
MAGIC = b"PAR1"


class Tail:
    """The last `TAIL` bytes of a stream, fed chunk by chunk; quacks like a
    hashlib digest so it can ride along with one (`Teed`)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.whole: bytes | None = None  # the tail handed over at once (`take`)

    def update(self, chunk: Any) -> None:
        self.data += chunk
        if len(self.data) > 2 * TAIL:
            del self.data[: len(self.data) - TAIL]

    def take(self, last: bytes) -> None:
        """The stream's last bytes at once (a copier's, copier.check), kept
        without a copy: on the job's thread every copy of up to 1 MiB holds the
        GIL that statements wait for."""
        self.whole = last[-TAIL:]

    def bytes(self) -> bytes:
        if self.whole is not None:
            return self.whole
        return bytes(memoryview(self.data)[-TAIL:])


class Teed:
    """A digest that also feeds a Tail."""

    def __init__(self, digest: Any, tail: Tail) -> None:
        self.digest, self.tail = digest, tail

    def update(self, chunk: Any) -> None:
        self.digest.update(chunk)
        self.tail.update(chunk)

    def hexdigest(self) -> str:
        return str(self.digest.hexdigest())


def tail_of(path: str) -> bytes:
    """The last TAIL bytes of a local file."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - TAIL))
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
    if footer + 8 > len(tail):
        return f"{what} has a Parquet footer of {footer} bytes (at most {TAIL - 8} accepted)"
    try:
        meta = pq.read_metadata(pa.BufferReader(MAGIC + tail[-(footer + 8):]))
        schema = meta.schema.to_arrow_schema()
    except Exception as exc:  # noqa: BLE001 - any footer pyarrow cannot read is damage
        return f"{what} has an unreadable Parquet footer ({type(exc).__name__})"
    got = [(field.name, field.type) for field in schema]
    want = expected_schema(table, f.schema_version)
    if got != want:
        return (f"{what} holds columns {_show(got)}, but schema version {f.schema_version} "
                f"stores {_show(want)}")
    if meta.num_rows != f.rows:
        return f"{what} holds {meta.num_rows} rows, its entry says {f.rows}"
    bounds: dict[str, tuple[Any, Any]] = {SEQ: (f.min_seq, f.max_seq)}
    if f.user_id is not None:
        bounds[USER] = (f.user_id, f.user_id)
    for name, (low, high) in f.key_range.items():  # lookups skip files by these
        bounds[name] = (low, high)
    for name, (low, high) in bounds.items():
        index = schema.get_field_index(name)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if group.num_rows == 0:
                continue
            stats = group.column(index).statistics
            if stats is None or not stats.has_min_max or stats.null_count:
                return f"{what} gives no complete statistics for {name}"
            if stats.min < low or stats.max > high:
                return (f"{what} holds {name} values {stats.min!r}..{stats.max!r}, "
                        f"outside its entry's {low!r}..{high!r}")
    return None


def _show(fields: list[tuple[str, pa.DataType]]) -> str:
    return "(" + ", ".join(f"{n} {t}" for n, t in fields) + ")"
