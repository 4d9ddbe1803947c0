"""Turning OS errors from a backup target into the contract's error codes.

A full disk or a read-only mount is an operator problem, not a bug, so it must
reach the user as a clear 4xx error naming the target, never as a 500."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from catalog.errors import (
    BackupInvalid,
    CairnError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def describe(exc: BaseException) -> str:
    """`[Errno 28] No space left on device`, without pyarrow's long wrapper text."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code:
        return f"[Errno {code}] {os.strerror(code)}"
    return str(exc) or type(exc).__name__


def write_failed(uri: str, exc: OSError) -> CairnError:
    """PermissionDenied for EACCES/EPERM/EROFS, InvalidArgument for anything else
    (ENOSPC, EDQUOT, ENOTDIR, …): the target cannot take the write."""
    message = f"cannot write to backup target '{uri}': {describe(exc)}"
    if exc.errno in _DENIED:
        return PermissionDenied(message)
    return InvalidArgument(message)


def read_failed(uri: str, exc: OSError, what: str = "") -> CairnError:
    """PermissionDenied when the target may not be read, otherwise BackupInvalid:
    data the backup needs cannot be read back."""
    subject = f"{what} in backup target '{uri}'" if what else f"backup target '{uri}'"
    message = f"cannot read {subject}: {describe(exc)}"
    if exc.errno in _DENIED:
        return PermissionDenied(message)
    if isinstance(exc, FileNotFoundError) and not what:
        return NotFound(f"backup target '{uri}' does not exist")
    return BackupInvalid(message)


@contextmanager
def writing(uri: str) -> Iterator[None]:
    """Map OS errors raised inside the block to `write_failed`."""
    try:
        yield
    except CairnError:
        raise
    except OSError as exc:
        raise write_failed(uri, exc) from exc


@contextmanager
def reading(uri: str, what: str = "") -> Iterator[None]:
    """Map OS errors raised inside the block to `read_failed`."""
    try:
        yield
    except CairnError:
        raise
    except OSError as exc:
        raise read_failed(uri, exc, what) from exc
