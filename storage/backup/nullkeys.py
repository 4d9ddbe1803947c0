"""BACKUP refuses, before storing any file, a table whose rows include some
whose primary key is NULL: VERIFY and RESTORE refuse such a file (contents.py:
"gives no complete statistics", "holds NULL ... values"), and a backup said
`completed` that no restore takes is a lie.

Cairn writes none now (UPDATE and DELETE refuse to, keys.refuse_null; a flush
drops them, keys.without_null_keys), but an older Cairn's UPDATE ... JOIN left
some in tables, in the write buffer or flushed (docs/sql.md). A table's
buffered rows are counted as they are exported (snapshot.BufferExport: they
are in memory); its files by their footers' NULL counts of the key columns
(Cairn writes them; a file without them has its key columns read), each
file's answer kept by its sha256 and identity, as live_rows keeps what its
footer says (and given the footer read here: one read serves both)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.diskerrors import read_shortage
from catalog.errors import InvalidArgument

from .. import live_rows
from .image import NamespaceImage
from .schema import TableEntry
from .sources import source_errors

_KNOWN: dict[tuple[str, int, int, int], int] = {}  # a file's identity -> its NULL keys
KNOWN_KEPT = 50_000  # answers kept, at most (then forgotten, all at once)


def null_keys(path: Path, sha256: str, primary_key: list[str]) -> int:
    """How many of the file's rows have a NULL in a key column (the most of any column)."""
    key = live_rows.identity(path, sha256)
    if key is not None and key in _KNOWN:
        return _KNOWN[key]
    with source_errors(str(path)):  # gone: BACKUP_INVALID
        meta = pq.read_metadata(str(path))
        live_rows.remember(key, meta)
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        most = 0
        for name in primary_key:
            at = index.get(name)
            if at is None:
                continue
            stats = [meta.row_group(g).column(at).statistics for g in range(meta.num_row_groups)]
            if all(s is not None and s.has_null_count for s in stats):
                nulls = sum(s.null_count for s in stats)
            else:  # no counts written: the column itself
                nulls = _column_nulls(path, name)
            most = max(most, nulls)
    if key is not None:
        if len(_KNOWN) >= KNOWN_KEPT:
            _KNOWN.clear()
        _KNOWN[key] = most
    return most


def _column_nulls(path: Path, name: str) -> int:
    """The NULLs of one column, read on this thread (pyarrow's pools start
    threads on first use: at the limit of processes, RLIMIT_NPROC or a
    cgroup's pids.max, that failed "Failed to launch worker thread", and the
    BACKUP answered 500 ArrowException for a sound file); a thread that still
    cannot start, or memory refused, is 503 naming the shortage."""
    try:
        return int(pq.ParquetFile(str(path)).read(columns=[name], use_threads=False)
                   .column(name).null_count)
    except (pa.ArrowException, MemoryError, RuntimeError) as exc:
        if (short := read_shortage(exc, f"file '{path}' cannot be read")) is not None:
            raise short from exc
        raise


def refuse(namespace: str, table: str, primary_key: list[str], n: int, *, buffered: bool) -> None:
    """INVALID_ARGUMENT: `n` rows of the table have a NULL key, in its write
    buffer (`buffered`) or in its files; what to do about them."""
    name = f"{namespace}.{table}"
    where = " AND ".join(f"{k} IS NOT NULL" for k in primary_key)
    fix = (f"FLUSH TABLE {name} drops them from the write buffer, then BACKUP again"
           if buffered else
           f"they are in its files: copy the other rows into a new table (CREATE TABLE, "
           f"then INSERT INTO it SELECT its columns FROM {name} WHERE {where}) and drop "
           "this one")
    raise InvalidArgument(
        f"cannot back up namespace '{namespace}': table '{table}' holds {n} "
        f"row(s) whose primary key ({', '.join(primary_key)}) is NULL, left by an "
        f"older Cairn, which no restore takes; {fix} (docs/sql.md). Nothing was written")


def check(images: list[NamespaceImage]) -> None:
    """INVALID_ARGUMENT naming the table and what to do, if a data file of the
    images holds a NULL key (the buffer's exports were checked as written)."""
    for image in images:
        tables = {id(f): t for t in image.tables for f in t.files}
        for item in image.files:
            if item.temporary:
                continue
            table: TableEntry = tables[id(item.entry)]
            n = null_keys(item.path, item.sha256, list(table.primary_key))
            if n:
                refuse(image.namespace, table.name, list(table.primary_key), n, buffered=False)


