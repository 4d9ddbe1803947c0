"""A file from a target is read whole by DuckDB too, the reader of every query.

The checks of backup/contents.py decode every column with pyarrow. DuckDB
reads Parquet with a reader of its own, stricter in places: a page whose
header's uncompressed size was not its size in an uncompressed chunk (which
pyarrow ignores), a DELTA_BYTE_ARRAY page whose prefix and suffix counts
differ, a page header DuckDB's Thrift refuses. Such a file verified valid and
was restored, and then every SELECT of its table failed ("corrupted:
uncompressed page size mismatch", naming the server's data file). So after
pyarrow's checks found nothing, DuckDB reads every value of every column
(`max(hash(column))`: nothing answered from statistics, nothing skipped) and
must count the entry's rows; else the file is damaged for VERIFY and RESTORE
alike. A private in-memory DuckDB of one thread (sandbox.scratch_config), one
for the process, a cursor a file."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from collections.abc import Iterator
from typing import IO, Any

from catalog.diskerrors import shortage
from storage.sandbox import scratch_config

# As nanreader.py's: no answer from the footer's statistics.
NOT_BY_STATISTICS = "statistics_propagation,filter_pushdown,expression_rewriter"


def problem(source: str | IO[bytes], columns: list[str], rows: int) -> str | None:
    """None when DuckDB reads every value of `columns` of the Parquet file
    `source` (a path, or a file object of the whole content) and counts
    `rows`, else what is wrong (a phrase to follow the file's name). A server
    out of descriptors or memory is UNAVAILABLE (503), not a damaged file."""
    try:
        return _problem(source, columns, rows)
    except OSError as exc:
        if (short := shortage(exc, DOING)) is not None:
            raise short from exc
        raise


DOING = "cannot check a file of the backup with DuckDB"


def _problem(source: str | IO[bytes], columns: list[str], rows: int) -> str | None:
    import duckdb

    with _path_of(source) as path, _cursor() as con:
        try:
            for part in _parts(columns):
                try:
                    terms = "".join(f', max(hash("{c}"))' for c in part)
                    got = con.execute(f"SELECT count(*){terms} FROM read_parquet(?)",
                                      [path]).fetchone()
                except duckdb.OutOfMemoryException as exc:
                    if len(part) > 1:
                        continue  # then one column at a time (_parts)
                    raise shortage(OSError(errno.ENOMEM, str(exc)), DOING) or exc from exc
                counted = got[0] if got else 0
                if counted != rows:
                    return f"holds {counted} rows to DuckDB, its entry says {rows}"
                if len(part) == len(columns):
                    break
        except duckdb.Error as exc:
            if (short := shortage(exc, DOING)) is not None:
                raise short from exc
            why = str(exc).splitlines()[0].replace(path, "the file")[:300]
            return f"cannot be read by DuckDB, which every query reads it with ({why})"
    return None


_base: tuple[int, Any] | None = None  # (pid, connection): one database a process
_base_lock = threading.Lock()


@contextlib.contextmanager
def _cursor() -> Iterator[Any]:
    """A cursor of this process's one private database (a connection costs
    ~18 ms, a cursor under 1: a restore of 10,000 small files)."""
    global _base
    import duckdb

    with _base_lock:
        if _base is None or _base[0] != os.getpid():  # never a parent's after a fork
            _base = (os.getpid(), duckdb.connect(":memory:", config={
                **scratch_config(), "preserve_insertion_order": False,
                # Nothing answered from the footer's statistics: every value read.
                "disabled_optimizers": NOT_BY_STATISTICS}))
        cursor = _base[1].cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _parts(columns: list[str]) -> Iterator[list[str]]:
    """Every column at once, then (if that ran out of memory: a row group of
    an older release held 1,000,000 rows whatever their width) one at a time."""
    yield columns
    if len(columns) > 1:
        yield from ([c] for c in columns)


@contextlib.contextmanager
def _path_of(source: str | IO[bytes]) -> Iterator[str]:
    """A path DuckDB can open for `source`: itself, its open descriptor, or
    (a spool still in memory, at most contents.SPOOL_MEMORY, or a file object
    with no descriptor) a copy in an anonymous memory file: nothing written
    to disk for it."""
    if isinstance(source, str):
        yield source
        return
    if getattr(source, "_rolled", True):  # a SpooledTemporaryFile in memory has none yet
        try:
            source.flush()
            fd = source.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            yield f"/proc/self/fd/{fd}"
            return
    fd = os.memfd_create("cairn-check", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as copy:
            source.seek(0)
            shutil.copyfileobj(source, copy)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
