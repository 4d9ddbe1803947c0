"""Errors of the data directory's own disk, as the contract's errors.

A full disk, a quota, a read-only remount, a failing device or too few file
handles is an operator problem, not a bug: the statement that meets one gets
503 UNAVAILABLE naming the data directory (never 500 INTERNAL with a trace).
Python's file calls raise OSError with an errno; rocksdict raises a bare
`Exception` whose text is RocksDB's status (`IO error: No space left on
device: While appending to file: …/catalog/000004.log: No space left on
device`), so that text is read instead.

Running out of file descriptors or memory (EMFILE, ENFILE, ENOMEM) while a
file is opened or read is the same kind of problem, wherever the file is: a
query's data file, a backup's source or target. `shortage` tells it from
damage (a file that is missing or does not read), for DuckDB's and pyarrow's
errors too, which carry no errno, only the system's words."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import CannotStart, Unavailable

# errno -> (what the data directory's disk is short of, SQLSTATE)
DISK_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on", "53100"),  # disk_full
    errno.EDQUOT: ("disk quota exceeded on", "53100"),
    errno.EFBIG: ("file size limit reached on", "54000"),  # program_limit_exceeded (ulimit -f)
    errno.EROFS: ("read-only file system for", "58030"),  # io_error
    errno.EIO: ("input/output error on", "58030"),
    errno.EMFILE: ("too many open files for", "53000"),  # insufficient_resources
    errno.ENFILE: ("too many open files in the system for", "53000"),
    errno.ENOMEM: ("cannot allocate memory to work on", "53200"),  # out_of_memory
}

# errno -> (what the process or the machine is short of, SQLSTATE). ENFILE's
# words ("Too many open files in system") hold EMFILE's: it is looked for first.
SHORTAGES: dict[int, tuple[str, str]] = {
    errno.ENFILE: ("too many open files in the system: the machine's file table is full", "53000"),
    errno.EMFILE: ("too many open files: the server is at its open-files limit (ulimit -n)",
                   "53000"),
    errno.ENOMEM: ("out of memory: the server cannot allocate memory", "53200"),
}


class CatalogLocked(Exception):
    """Another process holds this data directory."""


class DataDirUnavailable(Unavailable):
    """The data directory cannot take the write now. `sqlstate` is the
    PostgreSQL code for the cause (53100 disk_full for a full disk)."""

    def __init__(self, message: str, sqlstate: str = "58030") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _describe(data_dir: Path, code: int, detail: str) -> DataDirUnavailable:
    what, state = DISK_ERRNOS[code]
    return DataDirUnavailable(f"{what} the data directory '{data_dir}'{detail}", state)


def from_oserror(data_dir: Path, exc: BaseException) -> DataDirUnavailable | None:
    """The contract's error for an OSError of the data directory's disk; None
    for any other error (a bug, or a missing file: not the disk's fault)."""
    if isinstance(exc, DataDirUnavailable):
        return exc
    code = getattr(exc, "errno", None)
    if not isinstance(exc, OSError) or code not in DISK_ERRNOS:
        return None
    return _describe(data_dir, code, f" ([Errno {code}] {os.strerror(code)})")


def shortage(exc: BaseException, doing: str = "") -> DataDirUnavailable | None:
    """503 UNAVAILABLE (53000 insufficient_resources, 53200 out_of_memory)
    for an error that says the server is out of file descriptors or memory
    (EMFILE, ENFILE, ENOMEM): by its errno, else by its text (DuckDB's
    IOException, pyarrow's errors); `doing` (`cannot read file '…'`) leads
    the message. None for any other error. It was told as a damaged data
    directory (500 INTERNAL), or as a damaged backup (422)."""
    if isinstance(exc, DataDirUnavailable):
        return exc
    code = getattr(exc, "errno", None)
    if code not in SHORTAGES:
        text = str(exc).lower()
        code = next((c for c in SHORTAGES if os.strerror(c).lower() in text), None)
        if code is None:
            return None
    what, state = SHORTAGES[code]
    message = (f"{what} and cannot open or read a file now ([Errno {code}] "
               f"{os.strerror(code)}); try again")
    return DataDirUnavailable(f"{doing}: {message}" if doing else message, state)


# A reader that cannot start a thread: pyarrow's words, and Python's.
NO_THREAD = ("failed to launch worker thread", "can't start new thread")
THREADS = ("cannot start a thread: the server is at its limit of processes and threads "
           "(ulimit -u, a cgroup's pids.max) or short of memory")


def no_thread(exc: BaseException, doing: str) -> DataDirUnavailable | None:
    """503 UNAVAILABLE (53000) for an error that says a thread could not be
    started (EAGAIN: pyarrow's ArrowException "Failed to launch worker
    thread: Resource temporarily unavailable", Python's RuntimeError "can't
    start new thread"), else None. Only those words: EAGAIN's own text in
    any error could be a file's (a column's name) echoed by its reader."""
    text = str(exc).lower()
    if not any(words in text for words in NO_THREAD):
        return None
    message = (f"{THREADS} and cannot read a file now ([Errno {errno.EAGAIN}] "
               f"{os.strerror(errno.EAGAIN)}); try again")
    return DataDirUnavailable(f"{doing}: {message}" if doing else message, "53000")


def read_shortage(exc: BaseException, doing: str) -> DataDirUnavailable | None:
    """`shortage` of an error a file's reader raised, with its MemoryError
    (pyarrow's ArrowMemoryError: an allocation refused) as ENOMEM: a sound
    file may need more memory than the machine gives now; and a thread it
    could not start (`no_thread`). Until 2026-12-07 VERIFY and RESTORE
    called such a file damaged ("cannot be read (ArrowMemoryError)"), where
    DuckDB's own shortage was 503; a thread not started ("cannot be read
    (ArrowException)") until 2026-12-08."""
    if isinstance(exc, MemoryError):
        return shortage(OSError(errno.ENOMEM, str(exc) or "out of memory"), doing)
    if (threads := no_thread(exc, doing)) is not None:
        return threads
    return shortage(exc, doing) if isinstance(exc, OSError) else None


def names_disk_cause(text: str) -> bool:
    """Whether an error's text names one of the disk's causes above."""
    low = text.lower()
    return any(os.strerror(code).lower() in low for code in DISK_ERRNOS)


def from_rocksdb(data_dir: Path, exc: BaseException) -> DataDirUnavailable | None:
    """The contract's error for RocksDB's IO error (a bare Exception from
    rocksdict); None when its text is not an IO error."""
    if isinstance(exc, DataDirUnavailable):
        return exc
    if (found := from_oserror(data_dir, exc)) is not None:
        return found
    text = str(exc)
    if not text.startswith("IO error"):
        return None
    text = text.removeprefix("IO error: ")
    if len(text) > 300:
        text = text[:300] + "…"
    for code in DISK_ERRNOS:
        reason = os.strerror(code)
        if reason.lower() in text.lower():
            # `No space left on device: While appending to file: …/000004.log: No space left
            # on device` says where, once: `(RocksDB: While appending to file: …/000004.log)`
            where = text.replace(f"{reason}: ", "", 1).removesuffix(f": {reason}")
            return _describe(data_dir, code, f" (RocksDB: {where})" if where != reason else "")
    return DataDirUnavailable(f"the data directory '{data_dir}' cannot be written "
                              f"(RocksDB: {text})")


def half_made(data_dir: Path, family: str) -> DataDirUnavailable:
    """A column family RocksDB created while its disk refused writes (its
    OPTIONS file could not be written): it is in the database, yet cannot be
    opened until the catalog is opened again. Was a bare Exception: 500."""
    return DataDirUnavailable(
        f"the data directory '{data_dir}' refused writes while column family '{family}' "
        "was being created: it cannot be used until the server restarts")


def open_failed(path: Path, exc: Exception) -> Exception:
    """Why RocksDB would not open the catalog at `path`, as one line for the
    operator: a disk that refuses (DataDirUnavailable), or a catalog that is
    damaged or cannot be read (CannotStart; RocksDB's own words kept)."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "…"
    missing = os.strerror(errno.ENOENT).lower() in text.lower()
    if text.startswith("Corruption") or missing:
        return CannotStart(
            f"the catalog '{path}' is damaged (RocksDB: {text}): Cairn will not open it; "
            f"put back catalog/ from a copy of the data directory, or start on a new data "
            f"directory and RESTORE the namespaces from their backups")
    if (mapped := from_rocksdb(path.parent, exc)) is not None:
        return mapped
    return CannotStart(f"the catalog '{path}' cannot be opened (RocksDB: {text})")
