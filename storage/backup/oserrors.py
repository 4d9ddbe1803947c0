"""Turning OS errors from a backup target into the contract's error codes.

A full disk or a read-only mount is an operator problem, not a bug, so it must
reach the user as a clear 4xx error naming the target, never as a 500. An
object store's errors carry no errno; pyarrow names S3's error instead
(`AWS Error ACCESS_DENIED during HeadObject operation: …`), and that name
says whether the store refused the credentials (PERMISSION_DENIED) or could
not be reached (UNAVAILABLE), neither of which is a damaged backup."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from catalog.diskerrors import shortage
from catalog.errors import (
    BackupInvalid,
    CairnError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)

_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}

# pyarrow's names of the AWS SDK's error types (aws-sdk-cpp `S3Errors`/`CoreErrors`)
_S3_REFUSED = {"ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH",
               "INVALID_CLIENT_TOKEN_ID", "MISSING_AUTHENTICATION_TOKEN", "EXPIRED_TOKEN",
               "UNRECOGNIZED_CLIENT", "INVALID_SIGNATURE", "REQUEST_TIME_TOO_SKEWED"}
_S3_UNREACHABLE = {"NETWORK_CONNECTION", "REQUEST_TIMEOUT", "SERVICE_UNAVAILABLE", "SLOW_DOWN",
                   "THROTTLING", "INTERNAL_FAILURE", "REQUEST_EXPIRED", "REQUEST_TIMEOUT_EXCEPTION"}
# HTTP statuses of "not now" the SDK names UNKNOWN: 429 TooManyRequests (how
# some stores throttle, not 503 SlowDown) and 408 Request Timeout. A 429 on an
# object read was BACKUP_INVALID: VERIFY called a sound backup invalid.
_S3_NOT_NOW = {408, 429}
_AWS_ERROR = re.compile(r"AWS Error ([A-Z_]+)(?: \(HTTP status (\d{3})\))?")
# The store answers that an upload's parts it acknowledged are not there: it
# did not keep what it was sent (the SDK follows a redirect to another host,
# which cannot be turned off in pyarrow; a proxy that drops writes).
_S3_LOST_PARTS = re.compile(r"\b(InvalidPart|NoSuchUpload)\b")


def _s3_refusal(uri: str, exc: OSError) -> CairnError | None:
    """PermissionDenied or Unavailable for an object store's error that says
    so; None for any other (a missing key, a bad request: the caller's own)."""
    found = _AWS_ERROR.search(str(exc))
    if found is None:
        return None
    kind, http = found.group(1), int(found.group(2) or 0)
    if kind in _S3_REFUSED or http in (401, 403):
        return PermissionDenied(f"backup target '{uri}' refuses access: {describe(exc)}")
    if kind in _S3_UNREACHABLE or http >= 500 or http in _S3_NOT_NOW:
        return Unavailable(f"backup target '{uri}' cannot be reached: {describe(exc)}")
    if _S3_LOST_PARTS.search(str(exc)):
        return Unavailable(f"backup target '{uri}' did not keep the parts of an upload it "
                           f"had accepted (a redirect to another host?): {describe(exc)}")
    return None


def describe(exc: BaseException) -> str:
    """`[Errno 28] No space left on device`, without pyarrow's long wrapper text."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code and "AWS Error" not in str(exc):  # S3's says more
        return f"[Errno {code}] {os.strerror(code)}"
    return str(exc) or type(exc).__name__


def write_failed(uri: str, exc: OSError) -> CairnError:
    """PermissionDenied for EACCES/EPERM/EROFS, Unavailable when the server
    is out of file descriptors or memory (EMFILE, ENFILE, ENOMEM: the target
    is not to blame), InvalidArgument for anything else (ENOSPC, EDQUOT,
    ENOTDIR, …): the target cannot take the write."""
    message = f"cannot write to backup target '{uri}': {describe(exc)}"
    if (refused := _s3_refusal(uri, exc)) is not None:
        return refused
    if (short := shortage(exc, f"cannot write to backup target '{uri}'")) is not None:
        return short
    if exc.errno in _DENIED:
        return PermissionDenied(message)
    return InvalidArgument(message)


def read_failed(uri: str, exc: OSError, what: str = "") -> CairnError:
    """PermissionDenied when the target may not be read, Unavailable when the
    server is out of file descriptors or memory (EMFILE, ENFILE, ENOMEM: the
    backup may be sound; it was BackupInvalid), otherwise BackupInvalid:
    data the backup needs cannot be read back."""
    subject = f"{what} in backup target '{uri}'" if what else f"backup target '{uri}'"
    message = f"cannot read {subject}: {describe(exc)}"
    if (refused := _s3_refusal(uri, exc)) is not None:
        return refused
    if (short := shortage(exc, f"cannot read {subject}")) is not None:
        return short
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
