"""Immutable Parquet files: written once (checksummed as they are written),
read while pinned, deleted only when nothing pins them.

Paths are relative to the data dir: `files/<table_uid>/<file_id>.parquet`. A new
file is written under `tmp/`, synced, then renamed into place; only a catalog
batch that registers a `DataFile` makes it part of a table, so a crash leaves
at worst an unreferenced file that `Engine.recover()` removes."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.errors import CannotStart, Internal
from catalog.ids import ID_CHARS, new_id

from .sandbox import SPILL_DIR

log = logging.getLogger("cairn.storage")

ROW_GROUP_ROWS = 1_000_000
NO_PIN = ""  # the token of a pin of no files (`FileStore.pin([])`)
# A row group also stays under about this many (Arrow) bytes: DuckDB reads a
# column chunk of a row group whole, per thread, so a 100 MB flush of wide rows
# in one row group made any scan of that column peak ~2 x 100 MB above the
# server's usual RSS (bench/bench_writer.py).
ROW_GROUP_BYTES = 16 * 1024 * 1024
# ... but a row group holds this many rows at least (but a file's last): a
# restore bounds a backed-up file's footer by the row groups its rows can
# fill (storage/backup/footers.py).
MIN_ROW_GROUP_ROWS = 1024
# A data file's key-value metadata saying its statistics leave out every REAL or
# DOUBLE column holding NaN (`_with_statistics`): files written before say
# nothing, and nanstats.py reads their columns to know.
NAN_RULE = {b"cairn.nan_statistics": b"none"}
WRITE_BUFFER = 1 << 20  # bytes Arrow gathers before each write of a data file (write_at)

# The names Cairn gives, the only ones its start-up sweep removes: a table's
# folder under files/ and its data files; in tmp/, a data file before its
# rename, a snapshot's export, DuckDB's spill, an archive's staging and its
# copies set aside (tempfile.mkdtemp: 8 of [a-z0-9_]).
TABLE_DIR = re.compile(rf"tbl-{ID_CHARS}")
DATA_FILE = re.compile(rf"f-{ID_CHARS}\.parquet")
TMP_NAME = re.compile(rf"f-{ID_CHARS}\.parquet|snapshot-s-{ID_CHARS}|{re.escape(SPILL_DIR)}(?:-[0-9]+)?"
                      rf"|archive-(?:read-)?[a-z0-9_]{{8}}")


def row_group_rows(rows: pa.Table) -> int:
    """Rows per row group for `rows`: ROW_GROUP_ROWS, fewer for wide rows."""
    per_row = max(1, int(rows.nbytes) // max(1, int(rows.num_rows)))
    return max(MIN_ROW_GROUP_ROWS, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // per_row))


class DamagedPath(Internal):
    """A catalog DataFile whose `path` is not `files/<table>/<file>.parquet`
    (absolute, climbing out with `..`, or any other name): damage to the
    catalog, told like a data file that cannot be read (storage/query_errors.py),
    without the path; the log names it. The file is never read or deleted."""

    def __init__(self, path: str) -> None:
        super().__init__("a table's data could not be read: the catalog is damaged (a data "
                         "file's path is not in the data directory's files/; the server log "
                         "names it)")
        self.path = path
        if path not in _TOLD:
            _TOLD.add(path)
            log.error("a data file record's path %r is not files/<table>/<file>.parquet: "
                      "the file is neither read nor deleted", path)


_TOLD: set[str] = set()  # damaged paths already logged (each once a process)


class _HashingWriter:
    """A write-only file that hashes every byte on its way to disk."""

    def __init__(self, path: Path, sync: bool = True) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.sync = sync
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self._f.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._f.flush()
            if self.sync:
                os.fsync(self._f.fileno())
            self._f.close()
            self.closed = True


def write_data_file(path: Path, rows: pa.Table, metadata: dict[bytes, bytes],
                    sync: bool = True, footer: list[Any] | None = None) -> tuple[int, str]:
    """Write `rows` to `path` exactly as a table's data file is written (zstd
    Parquet, hashed on the way, synced unless not `sync`: a snapshot's export
    of buffered rows, read once by its backup and removed, need not wait for
    the disk); returns (bytes, sha256). `footer`, if given, gets the file's
    footer (pq.FileMetaData) as written."""
    # Parquet's writer makes a write for each page and header: through a MiB
    # of Arrow's buffer (which needs no GIL), the hashing writer takes the
    # GIL once a MiB, not ~20 times a 10,000-row file, each time making the
    # event loop wait for it (docs/performance.md, "The event loop's GIL
    # beside a BACKUP"). The buffer is closed (flushed) before the writer.
    with _hashed(path, sync) as writer, \
            pa.BufferedOutputStream(pa.PythonFile(writer, mode="w"), WRITE_BUFFER) as sink:
        _write_parquet(sink, rows, metadata, footer)
    return writer.size, writer.sha.hexdigest()


def write_copy(dest: Path, src: Path, length: int, tail: bytes) -> tuple[int, str]:
    """`src`'s first `length` bytes and then `tail` as a new file `dest`,
    hashed on the way and synced: a data file with another footer
    (nanstats.py). (bytes, sha256)."""
    with _hashed(dest) as writer, open(src, "rb") as f:
        left = length
        while left > 0:
            chunk = f.read(min(left, WRITE_BUFFER))
            if not chunk:
                raise OSError(f"{src} is shorter than {length} bytes")
            writer.write(chunk)
            left -= len(chunk)
        writer.write(tail)
    return writer.size, writer.sha.hexdigest()


@contextmanager
def _hashed(path: Path, sync: bool = True) -> Iterator[_HashingWriter]:
    """A hashing writer to `path`, closed (synced) after the block; on any
    error closed and the file removed."""
    writer = _HashingWriter(path, sync)
    try:
        yield writer
        writer.close()
    except BaseException:
        writer.close()
        path.unlink(missing_ok=True)
        raise


def data_file_bytes(rows: pa.Table, metadata: dict[bytes, bytes],
                    footer: list[Any] | None = None) -> tuple[bytes, str]:
    """The bytes `write_data_file` would write for `rows`, in memory, and their
    sha256: for a few rows no file is made (a snapshot's export of a small
    buffer, stored straight from memory: creating, writing and removing a
    file cost 2.5 times the Parquet encoding of one row)."""
    sink = pa.BufferOutputStream()
    _write_parquet(sink, rows, metadata, footer)
    data = sink.getvalue().to_pybytes()
    return data, hashlib.sha256(data).hexdigest()


def _write_parquet(sink: Any, rows: pa.Table, metadata: dict[bytes, bytes],
                   footer: list[Any] | None) -> None:
    pq.write_table(
        rows.replace_schema_metadata({**(rows.schema.metadata or {}), **metadata, **NAN_RULE}),
        sink,
        compression="zstd",
        row_group_size=row_group_rows(rows),
        metadata_collector=footer,
        write_statistics=_with_statistics(rows),
    )


def _with_statistics(rows: pa.Table) -> bool | list[str]:
    """The columns whose footer statistics are written: not a REAL or DOUBLE
    column holding NaN. Arrow leaves NaN out of a column's min and max, and
    DuckDB skips a row group by them: `WHERE x = 'NaN'::DOUBLE`, `isnan(x)`
    and `x > 2` missed the NaN rows of a flushed file, and so did an UPDATE
    or DELETE of them (a NaN key an older Cairn stored could not be found)."""
    nan = [f.name for f in rows.schema if pa.types.is_floating(f.type)
           and pc.any(pc.is_nan(rows.column(f.name))).as_py()]
    return [n for n in rows.column_names if n not in nan] if nan else True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """Writes, pins and retires the data dir's Parquet files."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.tmp_dir = data_dir / "tmp"
        self.files_dir = data_dir / "files"
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._pins: Counter[str] = Counter()
        self._tokens: dict[str, list[str]] = {}
        self._doomed: set[str] = set()

    def abs(self, rel: str) -> Path:
        """The file a DataFile's `path` names. Only `files/<table>/<file>.parquet`
        under names Cairn gives is one: a catalog record with any other path (an
        absolute one, `..`, damage) raises DamagedPath, never leaving files/."""
        if not self.is_data_path(rel):
            raise DamagedPath(rel)
        return self.data_dir / rel

    @staticmethod
    def is_data_path(rel: str) -> bool:
        """Whether `rel` is `files/<table>/<file>.parquet` under names Cairn gives."""
        parts = rel.split("/") if isinstance(rel, str) else []
        return (len(parts) == 3 and parts[0] == "files" and TABLE_DIR.fullmatch(parts[1]) is not None
                and DATA_FILE.fullmatch(parts[2]) is not None)

    # --- writing --------------------------------------------------------

    def write(self, table_uid: str, rows: pa.Table, metadata: dict[bytes, bytes]) -> tuple[str, str, int, str]:
        """Write `rows` as a zstd Parquet file; returns (file_id, rel path, bytes, sha256).
        The file is in place (renamed, synced) but not yet referenced by the catalog."""
        return self.write_with(table_uid, lambda tmp: self.write_at(tmp, rows, metadata))

    def write_with(self, table_uid: str,
                   write: Callable[[Path], tuple[int, str]]) -> tuple[str, str, int, str]:
        """`write`, the file made by `write(path)` (which returns bytes, sha256)."""
        file_id = new_id("f")
        tmp = self.tmp_dir / f"{file_id}.parquet"
        size, sha = write(tmp)
        try:
            rel = self.rel_path(table_uid, file_id)
            final = self.abs(rel)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return file_id, rel, size, sha

    def write_at(self, path: Path, rows: pa.Table, metadata: dict[bytes, bytes]) -> tuple[int, str]:
        """`write_data_file`, synced."""
        return write_data_file(path, rows, metadata)

    @staticmethod
    def rel_path(table_uid: str, file_id: str) -> str:
        """Where a table's data file lives, relative to the data dir."""
        return f"files/{table_uid}/{file_id}.parquet"

    def place(self, table_uid: str) -> tuple[str, str, Path]:
        """A new data file's (file_id, rel path, absolute path), its directory made:
        for a file copied in from elsewhere (a restore), registered later."""
        file_id = new_id("f")
        rel = self.rel_path(table_uid, file_id)
        path = self.abs(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        return file_id, rel, path

    @staticmethod
    def sync(paths: list[Path]) -> None:
        """fsync files and then their directories: after a power loss no file the
        catalog is about to reference may be a hole."""
        for path in paths:
            _fsync_file(path)
        for d in sorted({p.parent for p in paths}):
            _fsync_dir(d)

    # --- pins -----------------------------------------------------------

    def pin(self, paths: list[str]) -> str:
        if not paths:  # nothing to keep (most point lookups): no token, no lock
            return NO_PIN
        token = new_id("pin")
        with self._lock:
            self._tokens[token] = list(paths)
            self._pins.update(paths)
        return token

    def unpin(self, token: str) -> None:
        if token == NO_PIN:
            return
        with self._lock:
            paths = self._tokens.pop(token, [])
            self._pins.subtract(paths)
            free = [p for p in paths if self._pins[p] <= 0]
            for p in free:
                del self._pins[p]
            doomed = [p for p in free if p in self._doomed]
            self._doomed.difference_update(doomed)
            self._lock.notify_all()
        for p in doomed:
            self._delete(p)

    def pinned(self, path: str) -> bool:
        with self._lock:
            return self._pins[path] > 0

    def retire(self, paths: list[str]) -> None:
        """Delete files the catalog no longer references: now if nothing pins
        them, else when the last pin goes (or at the next start-up)."""
        now = []
        with self._lock:
            for p in paths:
                if self._pins[p] > 0:
                    self._doomed.add(p)
                else:
                    now.append(p)
        for p in now:
            self._delete(p)

    def wait_unpinned(self, paths: list[str], timeout: float | None = None) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: all(self._pins[p] <= 0 for p in paths), timeout)

    def _delete(self, rel: str) -> None:
        try:
            path = self.abs(rel)
        except DamagedPath:
            log.warning("a retired data file's path %r is not a data file of the data directory: "
                        "not deleted", rel)
            return
        try:
            path.unlink(missing_ok=True)
            if path.parent != self.files_dir and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except FileNotFoundError:
            pass  # its folder went with another delete of the table's files: gone, as asked
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:  # a file came in meanwhile: the folder stays
                log.warning("could not delete retired file %s", rel, exc_info=True)

    # --- start-up -------------------------------------------------------

    def sweep(self, referenced: set[str], keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove what Cairn left in `tmp/`, and its data files under `files/`
        that are not in `referenced` (with their emptied table folders), save in
        the folders of the tables in `keep` (a table whose records are damaged:
        its unreferenced files may be the ones its records should name). Only
        names Cairn gives are touched (TMP_NAME; TABLE_DIR/DATA_FILE), and no
        link is followed or removed: anything else there is someone else's,
        left as it is, with a WARNING. A linked `tmp/` or `files/` is refused."""
        for own in (self.tmp_dir, self.files_dir):
            if own.is_symlink():  # storage/datadir.py refuses it before the catalog opens
                raise CannotStart(f"'{own}' is a symbolic link: Cairn does not follow links "
                                  f"in its data directory")
        removed: list[str] = []
        foreign: list[str] = []
        for entry in _scan(self.tmp_dir):
            rel = f"tmp/{entry.name}"
            if not TMP_NAME.fullmatch(entry.name) or entry.is_symlink():
                foreign.append(rel)
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)  # never follows a link inside
            else:
                Path(entry.path).unlink(missing_ok=True)
            removed.append(rel)
        for table in _scan(self.files_dir):
            if not (TABLE_DIR.fullmatch(table.name) and table.is_dir(follow_symlinks=False)):
                foreign.append(f"files/{table.name}")
                continue
            if table.name in keep:
                continue
            kept = False
            for entry in _scan(Path(table.path)):
                rel = f"files/{table.name}/{entry.name}"
                if rel in referenced:
                    kept = True
                elif DATA_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    Path(entry.path).unlink(missing_ok=True)
                    removed.append(rel)
                else:
                    foreign.append(rel)
                    kept = True
            if not kept:
                with suppress(OSError):
                    os.rmdir(table.path)
        if foreign:
            log.warning("start-up clean-up: %d entries in files/ and tmp/ are not Cairn's (or "
                        "are links, never followed) and were left as they are: %s%s", len(foreign), ", ".join(foreign[:5]),
                        ", …" if len(foreign) > 5 else "")
        return removed


def damaged_tables(records: list[Any]) -> frozenset[str]:
    """The tables (uids) of DataFile `records` whose path is damaged (DamagedPath):
    the sweep leaves their folders, the file a record should name may be there."""
    damaged = frozenset(f.table_uid for f in records if not FileStore.is_data_path(f.path))
    if damaged:
        log.warning("the catalog names data files outside files/ for tables %s: their "
                    "folders are not swept", ", ".join(sorted(damaged)))
    return damaged


def _scan(path: Path) -> list[os.DirEntry[str]]:
    """The entries of a directory, sorted by name (none if it is not there)."""
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []
