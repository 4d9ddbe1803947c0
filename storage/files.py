"""Immutable Parquet files: written once (checksummed as they are written),
read while pinned, deleted only when nothing pins them.

Paths are relative to the data dir: `files/<table_uid>/<file_id>.parquet`. A new
file is written under `tmp/`, synced, then renamed into place; only a catalog
batch that registers a `DataFile` makes it part of a table, so a crash leaves
at worst an unreferenced file that `Engine.recover()` removes."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.ids import new_id

log = logging.getLogger("cairn.storage")

ROW_GROUP_ROWS = 1_000_000
NO_PIN = ""  # the token of a pin of no files (`FileStore.pin([])`)
# A row group also stays under about this many (Arrow) bytes: DuckDB reads a
# column chunk of a row group whole, per thread, so a 100 MB flush of wide rows
# in one row group made any scan of that column peak ~2 x 100 MB above the
# server's usual RSS (bench/bench_writer.py).
ROW_GROUP_BYTES = 16 * 1024 * 1024
WRITE_BUFFER = 1 << 20  # bytes Arrow gathers before each write of a data file (write_at)


def row_group_rows(rows: pa.Table) -> int:
    """Rows per row group for `rows`: ROW_GROUP_ROWS, fewer for wide rows."""
    per_row = max(1, int(rows.nbytes) // max(1, int(rows.num_rows)))
    return max(1024, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // per_row))


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
    writer = _HashingWriter(path, sync)
    try:
        # Parquet's writer makes a write for each page and header: through a
        # MiB of Arrow's buffer (which needs no GIL), the hashing writer
        # takes the GIL once a MiB, not ~20 times a 10,000-row file, each
        # time making the event loop wait for it (docs/performance.md,
        # "The event loop's GIL beside a BACKUP").
        with pa.BufferedOutputStream(pa.PythonFile(writer, mode="w"), WRITE_BUFFER) as sink:
            _write_parquet(sink, rows, metadata, footer)
        writer.close()
    except BaseException:
        writer.close()
        path.unlink(missing_ok=True)
        raise
    return writer.size, writer.sha.hexdigest()


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
        rows.replace_schema_metadata({**(rows.schema.metadata or {}), **metadata}),
        sink,
        compression="zstd",
        row_group_size=row_group_rows(rows),
        metadata_collector=footer,
    )


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
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._pins: Counter[str] = Counter()
        self._tokens: dict[str, list[str]] = {}
        self._doomed: set[str] = set()

    def abs(self, rel: str) -> Path:
        return self.data_dir / rel

    # --- writing --------------------------------------------------------

    def write(self, table_uid: str, rows: pa.Table, metadata: dict[bytes, bytes]) -> tuple[str, str, int, str]:
        """Write `rows` as a zstd Parquet file; returns (file_id, rel path, bytes, sha256).
        The file is in place (renamed, synced) but not yet referenced by the catalog."""
        file_id = new_id("f")
        tmp = self.tmp_dir / f"{file_id}.parquet"
        size, sha = self.write_at(tmp, rows, metadata)
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
        path = self.abs(rel)
        try:
            path.unlink(missing_ok=True)
            if path.parent != self.files_dir and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError:
            log.warning("could not delete retired file %s", rel, exc_info=True)

    # --- start-up -------------------------------------------------------

    def sweep(self, referenced: set[str]) -> list[str]:
        """Remove `tmp/` and every Parquet file under `files/` not in `referenced`."""
        removed = []
        for p in self.tmp_dir.iterdir():
            if p.is_file() or p.is_symlink():
                p.unlink(missing_ok=True)
            else:
                shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p.relative_to(self.data_dir)))
        for p in self.files_dir.rglob("*"):
            if p.is_file():
                rel = p.relative_to(self.data_dir).as_posix()
                if rel not in referenced:
                    p.unlink(missing_ok=True)
                    removed.append(rel)
        for d in sorted(self.files_dir.glob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return removed
