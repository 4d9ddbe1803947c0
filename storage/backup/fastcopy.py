"""Local-to-local copies of raw objects, hashed on the way.

A raw object between two local files (a backup into a directory target, a
restore from one) is read with `preadv` into one reused 1 MiB buffer, hashed,
and written from that buffer (`pwrite`): the bytes checked are exactly the
bytes stored. Several objects are in flight at once (storage/inflight.py), so
the cores stay busy without a second thread per copy; each runs on the
caller's thread, at the job's priority (a transfer worker inherits the
background level from the job thread that starts it, storage/priority.py).

Why not the kernel copy (`copy_file_range`) with the destination hashed back
from the page cache by a second thread, as before: both move every byte
twice, but there each copy read pages no cache held and every chunk crossed
threads, while here the hash and the write read a buffer the read has just
filled (it fits a core's L2). For the 519 MiB of bench_transfer.py, 4 files in
flight with fsync, it took 0.26-0.32 s of system CPU against 0.34-0.64 s, the
same user CPU (the sha256) (docs/performance.md, "The copy itself").

The writes of a restore go straight to the disk (`O_DIRECT`, where the file
system takes it; `direct=False` keeps the page cache): no copy into the page
cache, nothing dirty left for the fsync, and the server's cached working set
is not pushed out by files nobody has read yet (0.20-0.34 s of system CPU for
the 519 MiB RESTORE against 0.43-0.68 s). A backup's objects are written
through the page cache, as `cp` writes, so a restore soon after reads them
from memory.

Progress, cancellation and errors behave as in transfer.copy: a cancel check
between chunks, `on_bytes` per chunk, OS errors through the caller's mapper."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from typing import Any

from .transfer import CHUNK_SIZE, ErrorMapper, OnBytes, ShouldStop, check_stop

STEP = CHUNK_SIZE  # bytes per read, hash and write: keeps progress, throttle and
# cancel checks as fine as transfer.copy's, and the buffer inside a core's L2
# (4 MiB steps cost several times the system CPU here)
PIECE = 256 * 1024  # bytes per write through the page cache (see _Writer.write)
ALIGN = 4096  # what a direct write's offset, length and buffer are aligned to
_DIRECT = getattr(os, "O_DIRECT", 0)


def copy_checked(
    src: int,
    dst: int,
    digest: Any,
    on_bytes: OnBytes | None = None,
    should_stop: ShouldStop | None = None,
    error: ErrorMapper | None = None,
    direct: bool = True,
) -> int:
    """Copy all of `src` to `dst` (both fds, `dst` open for writing and empty),
    updating `digest` with exactly the bytes written. Returns bytes copied."""
    buffer = mmap.mmap(-1, STEP)  # page-aligned, as direct writes want; unmapped when freed
    view = memoryview(buffer)
    out = _Writer(dst, direct)
    offset = 0
    while True:
        check_stop(should_stop)
        try:
            n = os.preadv(src, [buffer], offset)
            if n:
                digest.update(view[:n])
                out.write(view, n, offset)
            else:
                out.finish(offset)
        except OSError as exc:
            raise (error(exc) if error else exc) from exc
        if n == 0:
            return offset
        offset += n
        if on_bytes is not None:
            on_bytes(n)


class _Writer:
    """Writes to `fd` straight to the disk (O_DIRECT) where the file system
    allows, else through the page cache. A direct write wants its offset,
    length and buffer aligned: the last block is padded with zeros and the
    file cut back to its size (`finish`)."""

    def __init__(self, fd: int, direct: bool) -> None:
        self.fd = fd
        self.direct = direct and _set_direct(fd, True)
        self.padded = False

    def write(self, view: memoryview, n: int, offset: int) -> None:
        size = n
        if self.direct:
            if offset % ALIGN:
                self.direct = _set_direct(self.fd, False)  # never: reads stop short only at the end
            else:
                size = -(-n // ALIGN) * ALIGN
                if size != n:
                    view[n:size] = bytes(size - n)
                    self.padded = True
        written = 0
        while written < size:
            # Through the page cache in pieces of PIECE: one 1 MiB write makes the
            # kernel allocate 1 MiB folios, and as free memory fragments that cost
            # 2.2-2.5 s of system CPU for 519 MiB in one trial of two (0.26-0.32 s
            # in pieces of 256 KiB, every trial).
            end = size if self.direct else min(size, written + PIECE)
            try:
                written += os.pwrite(self.fd, view[written:end], offset + written)
            except OSError as exc:
                if not self.direct or exc.errno != errno.EINVAL:
                    raise
                # The file system took the flag but not this write: the page cache.
                self.direct = _set_direct(self.fd, False)
                size, self.padded = n, False

    def finish(self, size: int) -> None:
        if self.padded:
            os.ftruncate(self.fd, size)


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for `fd`; whether it is on."""
    if not _DIRECT:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _DIRECT) if on else (flags & ~_DIRECT))
    except OSError:  # not supported here (tmpfs, some FUSE file systems)
        return False
    return on
