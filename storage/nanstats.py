"""Data files whose footer statistics hide NaN rows, rewritten without them.

Arrow leaves NaN out of a REAL or DOUBLE column's min and max, and DuckDB
skips a row group by them: `WHERE x > 2`, `x = 'NaN'::DOUBLE` and
`isnan(x)` missed the NaN rows of a flushed file, and an UPDATE or DELETE of
them changed nothing. Since 2026-12-06 a flush writes no statistics for such
a column (files.py `_with_statistics`), but files flushed before, and every
file of a backup taken before, still have them. So:

- `mend_data_dir` runs when a data directory is opened (before any table is
  read) until it has once gone through every file (Meta `nan_stats`): each
  such file is written again, the catalog's records are pointed at the new
  files a few at a time (CHUNK_FILES, CHUNK_BYTES), the write-ahead log is
  synced, and only then are those old files removed, so the pass needs room
  for a chunk, not for every file. A crash midway leaves unreferenced files
  that the start-up sweep removes; a write that fails twice (a full disk), or
  a read that fails for a passing reason (TRANSIENT, or the reader process
  ended: killed, out of memory), leaves the pass without the mark, and the next start goes on (the other files are gone through all
  the same). A file DuckDB cannot read is left as it is (its table's queries
  say so), as is a file two records name (damage), and nothing in the pass
  stops a start.
- `mend_restored` does the same to a restore's fetched files before they
  are installed (nothing references them yet).

What a file says is read from its footer in Python
(footer_stats.float_min_max: pyarrow ends the process on some damaged
statistics): a file that says it follows the rule (files.NAN_RULE: every
file written since) or has no REAL/DOUBLE min and max is not read further.
Otherwise DuckDB, the reader whose filters the statistics mislead, reads
those columns, in a child process (nanreader.py: a reader that ended the
process on a damaged file would stop every start); a file it cannot read,
or that ends the child, is left as it is, since its table's queries say so. A file
is written again by copying its pages as they are and writing its footer
again without those columns' statistics (footer_stats.without_statistics):
no value is decoded, so no page can decode to more than the file holds. The
sha256 is the new bytes'."""

from __future__ import annotations

import errno
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

from catalog import Catalog, DataFile, Meta

from .files import NAN_RULE, FileStore, write_copy
from .footer_stats import FooterError, float_min_max, without_statistics
from .nanreader import NanReader, Unreadable

log = logging.getLogger("cairn.storage")

MARK = "nan_stats"  # Meta record: every file of the data directory was gone through
CHUNK_FILES = 32  # files rewritten before their records are swapped and the old ones go
CHUNK_BYTES = 64 << 20  # ... or this many bytes of them
MAGIC = b"PAR1"
# A file that could not be read for one of these is read again at the next
# start (the pass leaves no mark); any other error is the file's own.
TRANSIENT = frozenset({errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EAGAIN,
                       errno.EINTR, errno.ENOBUFS})


def footer(path: Path) -> tuple[bytes, int]:
    """The file's footer (the Thrift FileMetaData) and where it starts."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 8))
        end = f.read(8)
        length = int.from_bytes(end[:4], "little")
        if len(end) != 8 or end[4:] != MAGIC or length > size - 12:
            raise FooterError("not a plain Parquet file's end")
        f.seek(size - 8 - length)
        return f.read(length), size - 8 - length


def nan_leaves(path: Path, meta: bytes, reader: NanReader) -> set[int]:
    """The leaf columns of the file (footer `meta`) whose min and max leave
    out a NaN they hold, as DuckDB reads them (`reader`; Unreadable for a file
    it cannot read: its table's queries say so)."""
    said, columns = float_min_max(meta)
    if all(said.get(k) == v for k, v in NAN_RULE.items()) or not columns:
        return set()  # written by the rule (a forged claim hides no more than leaving rows out)
    return reader.holding_nan(path, sorted(columns))


def hides_nan(path: Path) -> bool:
    """Whether a REAL or DOUBLE column of the file has min/max statistics in
    some row group and holds a NaN."""
    with NanReader() as reader:
        return bool(nan_leaves(path, footer(path)[0], reader))


def rewrite(files: FileStore, rec: DataFile, meta: bytes, at: int, leaves: set[int]) -> DataFile:
    """The file again with another footer (`meta`, its footer, starts at
    `at`): the columns `leaves` without statistics, every page as it was; in
    place but not yet referenced. Its record names the new file."""
    path = files.abs(rec.path)
    tail = without_statistics(meta, leaves)
    tail += len(tail).to_bytes(4, "little") + MAGIC
    file_id, rel, size, sha = files.write_with(
        rec.table_uid, lambda tmp: write_copy(tmp, path, at, tail))
    return replace(rec, file_id=file_id, path=rel, bytes=size, sha256=sha)


def mend_restored(files: FileStore, records: list[DataFile],
                  written: list[Path]) -> list[DataFile]:
    """A restore's fetched, unreferenced files (checked as a target's are):
    each that hides NaN rows is replaced by one that does not (in `written`,
    the paths removed should the restore fail, the new file takes the old
    one's place; the old is removed now)."""
    out = []
    with NanReader() as reader:
        for rec in records:
            path = files.abs(rec.path)
            try:
                meta, at = footer(path)
                leaves = nan_leaves(path, meta, reader)
                new = rewrite(files, rec, meta, at, leaves) if leaves else rec
            except (FooterError, Unreadable) as exc:  # read by the restore's check, not here:
                log.warning("restored data file %s may keep statistics that hide NaN rows "
                            "from filters: %s", rec.path, exc)  # installed as it came
                new = rec
            if new is not rec:
                written.append(files.abs(new.path))
                if path in written:  # synced again by the next member of a set's restore
                    written.remove(path)
                path.unlink(missing_ok=True)
            out.append(new)
    return out


def mend_data_dir(catalog: Catalog, files: FileStore) -> int:
    """Until marked (Meta MARK): the data directory's files that hide NaN
    rows written again, as the module says. How many were."""
    try:
        if catalog.get(Meta, MARK) is not None:
            return 0
        with NanReader() as reader:
            done, complete = _mend_all(catalog, files, reader)
        if complete:
            catalog.put(Meta(MARK, 1))
    except Exception as exc:  # noqa: BLE001 - a start goes on: the pass runs again next time
        log.warning("the data files whose statistics hide NaN rows were not all written "
                    "again (the next start goes on): %s", exc)
        return 0
    if done:
        log.info("rewrote %d data files whose statistics hid NaN rows from filters", done)
    return done


def _mend_all(catalog: Catalog, files: FileStore, reader: NanReader) -> tuple[int, bool]:
    """(files rewritten, whether every file was gone through)."""
    chunk: list[tuple[DataFile, DataFile]] = []
    done, size, complete = 0, 0, True
    records = catalog.scan(DataFile)
    named = Counter(rec.path for rec in records)
    for rec in records:
        if named[rec.path] > 1:  # damage: a rewrite would pull the file from under another
            log.warning("data file %s is named by %d records: left as it is", rec.path,
                        named[rec.path])
            continue
        try:
            path = files.abs(rec.path)
            meta, at = footer(path)
            leaves = nan_leaves(path, meta, reader)
        except Exception as exc:  # noqa: BLE001 - damage: told when its table is read
            if (isinstance(exc, OSError) and exc.errno in TRANSIENT) or \
                    (isinstance(exc, Unreadable) and exc.passing):
                complete = False  # tried again at the next start
            log.warning("data file %s is left as it is for now: %s", rec.path, exc)
            continue
        if not leaves:
            continue
        try:
            new = rewrite(files, rec, meta, at, leaves)
        except OSError:  # a full disk: what is written goes in, and its room comes back
            done += _swap(catalog, files, chunk)
            chunk, size = [], 0
            try:
                new = rewrite(files, rec, meta, at, leaves)
            except OSError as exc:
                log.warning("data file %s could not be written again: %s", rec.path, exc)
                complete = False
                continue
        chunk.append((rec, new))
        size += new.bytes
        if len(chunk) >= CHUNK_FILES or size >= CHUNK_BYTES:
            done += _swap(catalog, files, chunk)
            chunk, size = [], 0
    return done + _swap(catalog, files, chunk), complete


def _swap(catalog: Catalog, files: FileStore, chunk: list[tuple[DataFile, DataFile]]) -> int:
    """The records point at the new files, durably; then the old files go."""
    if not chunk:
        return 0
    batch = catalog.batch()
    for old, new in chunk:
        batch.delete(DataFile, old.key()).put(new)
    batch.commit()
    catalog.flush_wal()  # the new records durable before the old files go
    for old, _ in chunk:
        files.abs(old.path).unlink(missing_ok=True)
    return len(chunk)
