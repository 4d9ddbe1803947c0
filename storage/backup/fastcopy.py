"""Local-to-local copies done by the kernel, checked as they land.

A raw object between two local files (a backup into a directory target, a
restore from one) needs no byte in user space: `os.copy_file_range` moves
them inside the kernel (falling back to `sendfile`, then to `pread`/`pwrite`,
where the file systems or the kernel cannot). The sha256 is computed from
the *destination*, chunk by chunk, by a second thread while the next chunk is
copied: what is checked is what was stored, read back from the page cache,
and hashing overlaps copying (hashlib and the copy calls release the GIL).

Progress, cancellation and errors behave as in transfer.copy: a cancel check
between chunks, `on_bytes` per chunk, OS errors through the caller's mapper."""

from __future__ import annotations

import errno
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .. import priority
from .transfer import CHUNK_SIZE, ErrorMapper, OnBytes, ShouldStop, check_stop

STEP = 1024 * 1024  # bytes per copy call and per hashed chunk: CHUNK_SIZE keeps
# progress, throttle and cancel checks as fine as transfer.copy's (measured: no
# slower than 8 MiB steps)
_READ = CHUNK_SIZE
# Errors meaning "this way of copying is not available here", not "the copy failed".
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF,
                errno.ETXTBSY, errno.EPERM}

_pool: ThreadPoolExecutor | None = None
_pool_guard = threading.Lock()


def _hashers() -> ThreadPoolExecutor:
    """Threads that hash what the copiers wrote (one chunk per copy in flight)."""
    global _pool
    with _pool_guard:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(4, 2 * (os.cpu_count() or 1)),
                                       thread_name_prefix="cairn-hash")
        return _pool


class _Copier:
    """Copy calls from one fd to another at explicit offsets, stepping down from
    copy_file_range to sendfile to pread/pwrite when one is not supported."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.mode = "copy_file_range" if hasattr(os, "copy_file_range") else "sendfile"

    def some(self, offset: int, count: int) -> int:
        """Copy up to `count` bytes at `offset`; 0 at the end of the source."""
        while True:
            try:
                if self.mode == "copy_file_range":
                    return os.copy_file_range(self.src, self.dst, count, offset, offset)
                if self.mode == "sendfile":
                    os.lseek(self.dst, offset, os.SEEK_SET)
                    return os.sendfile(self.dst, self.src, offset, count)
                data = os.pread(self.src, min(count, _READ), offset)
                written = 0
                while written < len(data):
                    written += os.pwrite(self.dst, memoryview(data)[written:], offset + written)
                return len(data)
            except OSError as exc:
                if self.mode == "pwrite" or exc.errno not in _UNSUPPORTED:
                    raise
                self.mode = "sendfile" if self.mode == "copy_file_range" else "pwrite"


def _hash_range(fd: int, offset: int, count: int, digest: Any, buffer: bytearray) -> None:
    view = memoryview(buffer)
    end = offset + count
    while offset < end:
        n = os.preadv(fd, [view[: min(len(buffer), end - offset)]], offset)
        if n == 0:  # the destination shrank under us: the sizes will not match
            return
        digest.update(view[:n])
        offset += n


# Hashing is a backup's or restore's work: at the background level, even on a
# pool thread that KILL/PAUSE JOB raised meanwhile (storage/priority.py).
_hash_lowered = priority.lowered(_hash_range)


def copy_checked(
    src: int,
    dst: int,
    digest: Any,
    on_bytes: OnBytes | None = None,
    should_stop: ShouldStop | None = None,
    error: ErrorMapper | None = None,
) -> int:
    """Copy all of `src` to `dst` (both fds, `dst` opened read-write and empty),
    updating `digest` with the bytes as stored in `dst`. Returns bytes copied."""
    copier = _Copier(src, dst)
    buffer = bytearray(_READ)
    hashed: Future[None] | None = None
    offset = 0
    try:
        while True:
            check_stop(should_stop)
            try:
                n = copier.some(offset, STEP)
            except OSError as exc:
                raise (error(exc) if error else exc) from exc
            if hashed is not None:
                hashed.result()  # chunks are hashed in order
                hashed = None
            if n == 0:
                return offset
            hashed = _hashers().submit(_hash_lowered, dst, offset, n, digest, buffer)
            offset += n
            # Counted, and a cancel checked, per CHUNK_SIZE as transfer.copy does.
            for start in range(0, n, CHUNK_SIZE):
                if start:
                    check_stop(should_stop)
                if on_bytes is not None:
                    on_bytes(min(CHUNK_SIZE, n - start))
    finally:
        if hashed is not None:  # an error or a cancel: let the hasher finish with the fd
            hashed.exception()
