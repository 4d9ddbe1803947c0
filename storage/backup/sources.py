"""The server's own files a backup reads (a table's Parquet files), and what
may be wrong with them: removed from under the server, unreadable, or changed
since their flush recorded their sha256 and size. Each is BackupInvalid naming
the file: the backup is refused, and its manifest never lists bytes nobody
read or bytes other than the ones recorded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from catalog.diskerrors import shortage
from catalog.errors import BackupInvalid, InvalidArgument


@contextmanager
def source_errors(path: str) -> Iterator[None]:
    """An OSError about `path` itself (opening, stat) becomes BackupInvalid,
    or Unavailable when the server is out of file descriptors or memory (the
    file may be sound); errors about anything else (the target) pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.filename != path:
            raise
        if (short := shortage(exc, f"file '{path}' cannot be read")) is not None:
            raise short from exc
        raise BackupInvalid(f"file '{path}' cannot be read: {exc.strerror or exc}") from exc


def check_source(path: str, oid: str, n: int, sha256: str | None, size: int | None) -> None:
    """The caller's recorded hash/size must match what was read: otherwise the
    source changed under us and storing it would make a lie of the manifest."""
    if sha256 is not None and oid != sha256:
        raise BackupInvalid(
            f"file '{path}' changed while being backed up: sha256 {oid}, expected {sha256}"
        )
    if size is not None and n != size:
        raise BackupInvalid(
            f"file '{path}' changed while being backed up: size {n}, expected {size}"
        )


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        if (short := shortage(exc, f"cannot read file '{path}'")) is not None:
            raise short from exc
        raise InvalidArgument(f"cannot read file '{path}': {exc.strerror}") from exc
