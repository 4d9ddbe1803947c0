"""Making pyarrow S3 file systems with the request checksums that fit the endpoint.

The AWS SDK inside pyarrow reads `AWS_REQUEST_CHECKSUM_CALCULATION` each time a
file system is made. Its default (`when_supported`) sends every upload as an
`aws-chunked` body with a CRC64NVME trailer. Over https that trailer is the only
check the store makes of the bytes, so it stays. Over plain http the SDK also
signs every payload with its sha256 (`x-amz-content-sha256`), which the store
checks; the trailer adds nothing to that but the chunked framing, which some
servers decode slowly (moto, the test server, copies the whole body once per
64 KiB chunk: half its CPU on a PUT). So http endpoints ask only for the
checksums an operation requires, and keep the signed sha256; Cairn checks every
object by its own sha256 on top (docs/architecture.md, "S3 request checksums").
An operator's own value in the environment wins, for every endpoint.

The variable is process-wide, so it is set under a lock just around each
construction. It is added once, at import (before the server starts threads),
and afterwards only its value is replaced: replacing a value never moves the C
environment array, so a concurrent getenv in another thread stays safe. Between
constructions it holds the operator's value, or else the SDK's default (valid
for every AWS client a child process may run; "" is not, botocore refuses it),
with `CAIRN_SET_AWS_CHECKSUM=1` beside it so that a child Cairn, which
inherits both, does not take it for the operator's.

One file system is made per set of options, and kept: making one waits on
pyarrow's process-wide S3 state until every S3 request running anywhere in
the process has ended (its client registry's write lock against each
request's read lock), so an endpoint that drips or hangs one read stalled the
making of every later file system, for every target (an honest one too).
Made once, a target's file system is there for every later statement.
"""

from __future__ import annotations

import copyreg
import os
import threading
from typing import Any

import pyarrow.fs as pafs

CHECKSUM_ENV = "AWS_REQUEST_CHECKSUM_CALCULATION"
SDK_DEFAULT = "when_supported"
PLAIN_HTTP = "when_required"

MARK_ENV = "CAIRN_SET_AWS_CHECKSUM"

_operator_value = None if os.environ.get(MARK_ENV) else os.environ.get(CHECKSUM_ENV) or None
if _operator_value is None:  # both added once, here; later only the value is replaced
    os.environ[CHECKSUM_ENV] = SDK_DEFAULT
    os.environ[MARK_ENV] = "1"
_lock = threading.Lock()
_kept: dict[tuple[tuple[str, str], ...], pafs.S3FileSystem] = {}
_kept_lock = threading.Lock()  # guards `_kept` only, never held while one is made


def checksum_mode(scheme: str) -> str:
    """The `AWS_REQUEST_CHECKSUM_CALCULATION` a file system for `scheme` is made with."""
    if _operator_value is not None:
        return _operator_value
    return PLAIN_HTTP if scheme == "http" else SDK_DEFAULT


def new_s3_filesystem(options: dict[str, Any]) -> pafs.S3FileSystem:
    """`S3FileSystem(**options)`, made with the checksum mode of its scheme:
    the one made before for the same options (see the module's docstring)."""
    mode = checksum_mode(str(options.get("scheme", "https")))
    key = (("", mode), *sorted((k, repr(v)) for k, v in options.items()))
    with _kept_lock:
        fs = _kept.get(key)
    if fs is None:
        fs = _made(options, lambda: pafs.S3FileSystem(**options))
        with _kept_lock:
            fs = _kept.setdefault(key, fs)
    return fs


def _made(options: dict[str, Any], make: Any) -> pafs.S3FileSystem:
    mode = checksum_mode(str(options.get("scheme", "https")))
    with _lock:
        os.environ[CHECKSUM_ENV] = mode
        try:
            return make()
        finally:
            os.environ[CHECKSUM_ENV] = _operator_value or SDK_DEFAULT


def _unpickled(kwargs: dict[str, Any]) -> pafs.S3FileSystem:
    """An S3FileSystem unpickled (a job process receives the Repository so,
    storage/jobproc.py) is made as `new_s3_filesystem` makes one: pyarrow's
    own unpickling would take the environment's mode, and an http upload
    went aws-chunked again (moto spent 9.4 s of CPU on a 130 MiB S3 BACKUP
    from a job process, 4.0 s from the server)."""
    return _made(kwargs, lambda: pafs.S3FileSystem._reconstruct(kwargs))


def _reduce(fs: pafs.S3FileSystem) -> tuple[Any, tuple[Any, ...]]:
    return _unpickled, fs.__reduce__()[1]


copyreg.pickle(pafs.S3FileSystem, _reduce)
