"""Which file a job process is reading when it dies (VERIFY and RESTORE).

A file's contents are read by pyarrow and DuckDB (contents.py), C++ readers
that a crafted file may make end their process: a segfault, an abort. In a job process
(storage/jobproc.py) that is no harm to the server, but it was 503 "may work
when run again" on every VERIFY and every RESTORE of that backup, never the
BACKUP_INVALID naming the file a damaged file gets.

So before a file's contents are read, the job process tells the server which
(`reading`): a message on its socket, read by the server even after the
process is gone. A call whose process died with a file marked is run again
(storage/jobblame.py); a file its process died on BLAME_AFTER times, in the
same backup, is not read again: the check says it is damaged, naming it, as
VERIFY and RESTORE both do. Only a crash counts (a signal such as SIGSEGV,
SIGBUS, SIGABRT): a process killed (SIGKILL: an operator's kill -9, the OOM
killer, for this file's memory or another process's) is no sign of damage,
since a valid file may need more memory than the machine has. Killed once on
a file, the check is run again and reads it; killed twice on one file, the
call is 503 naming it (more memory may read it), never BACKUP_INVALID.

`marking` is set around a call's checks (verify_backup_of, first_problem),
on the thread that runs them; with no marking (VERIFY ARCHIVE's bases, the
job's work in the server) nothing is sent and nothing is blamed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_state = threading.local()


def key(backup_id: str, content_sha256: str) -> str:
    """A file of a backup, as the marks name it (its content's digest)."""
    return f"{backup_id}/{content_sha256}"


def backup_of(mark: str) -> str:
    """The backup of a file as the marks name it (`key`)."""
    return mark.split("/", 1)[0]


@contextlib.contextmanager
def marking(work: Any, blamed: frozenset[str] = frozenset(),
            first: tuple[str, ...] = ()) -> Iterator[None]:
    """The checks within report the file they read to `work` (a job process's
    RemoteWork: `reading`), take the files of `blamed` as damaged, and read
    those of `first` before any other, in that order (`ahead`)."""
    _state.work, _state.blamed, _state.first = work, blamed, first
    try:
        yield
    finally:
        _state.work, _state.blamed, _state.first = None, frozenset(), ()


def ahead(backup_id: str, content_sha256s: Any) -> int:
    """Where these files of the backup come among those to be read before
    the others (0 first; past them all: the number of them). A process died
    in such a file after reading other files, and only a death with it read
    first counts toward its blame (storage/jobblame.py)."""
    first: tuple[str, ...] = getattr(_state, "first", ())
    return min((first.index(k) for c in content_sha256s if (k := key(backup_id, c)) in first),
               default=len(first))


def blamed(backup_id: str, content_sha256: str, what: str) -> str | None:
    """The problem of a file the job process died on each time it read it,
    else None (`what` names the file and its table, as contents.py does)."""
    if key(backup_id, content_sha256) not in getattr(_state, "blamed", frozenset()):
        return None
    return (f"{what} cannot be read: the job process reading it ended each time "
            "(a crash in the Parquet readers)")


@contextlib.contextmanager
def reading(backup_id: str, content_sha256: str) -> Iterator[None]:
    """Around the read of one file's contents: the server knows it is this one."""
    work: Any = getattr(_state, "work", None)
    tell = getattr(work, "reading", None)
    if work is None or tell is None:
        yield
        return
    mark = key(backup_id, content_sha256)
    tell(mark)
    work.fault("check.reading", key=mark)
    yield
    tell(None)


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Around a read that is not a file's contents (an object: decrypted,
    decompressed, hashed): should the job process die in it, its error says
    `what` (storage/joblost.py); no crash there is blamed on the object."""
    tell = getattr(getattr(_state, "work", None), "doing", None)
    if tell is None:
        yield
        return
    tell(what)
    yield
    tell(None)
