"""Local-to-local copies of raw objects, hashed on the way.

A raw object between two local files (a backup into a directory target, a
restore from one) is read with `preadv` into one reused 1 MiB buffer, hashed,
and written from that buffer (`pwrite`): the bytes checked are exactly the
bytes stored. Several objects are in flight at once (storage/inflight.py), so
the cores stay busy without a second thread per copy; each runs in a copier
process (below) or on the caller's thread, at the job's background priority
(storage/priority.py).

Why not the kernel copy (`copy_file_range`) with the destination hashed back
from the page cache by a second thread, as before: both move every byte
twice, but there each copy read pages no cache held and every chunk crossed
threads, while here the hash and the write read a buffer the read has just
filled (it fits a core's L2). For the 519 MiB of bench_transfer.py, 4 files in
flight with fsync, it took 0.26-0.32 s of system CPU against 0.34-0.64 s, the
same user CPU (the sha256) (docs/performance.md, "The copy itself").

The writes go through the page cache, as `cp` writes, for a backup and a
restore alike. A backup's objects are then read from memory by a restore soon
after. A restore's files were written straight to the disk (`O_DIRECT`) until
a quiet machine showed what that cost: the 519 MiB RESTORE took 1.13-1.27 s
where `cp` + `sync` of the same files took 0.64-0.75 s after a delete, and
0.72-0.86 s through the page cache (docs/performance.md).

The loop itself is in copyloop.py (standard library only). `copy_file` runs
it in a copier process where it can (storage/backup/copier.py): the hash and
the copies then never hold the server's GIL, which a single-row INSERT on the
event loop waited for behind the transfer threads (docs/performance.md, "The
copy out of the server process"). `copy_checked` runs it on the caller's thread.

Progress, cancellation and errors behave as in transfer.copy: a cancel check
between chunks, `on_bytes` per chunk, OS errors through the caller's mapper."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import priority
from . import copier
from .copyloop import PIECE, STEP, pump
from .transfer import ErrorMapper, OnBytes, ShouldStop, check_stop

__all__ = ["PIECE", "STEP", "copy_checked", "copy_file"]


def copy_checked(
    src: int,
    dst: int,
    digest: Any,
    on_bytes: OnBytes | None = None,
    should_stop: ShouldStop | None = None,
    error: ErrorMapper | None = None,
) -> int:
    """Copy all of `src` to `dst` (both fds, `dst` open for writing and empty)
    on this thread, updating `digest` with exactly the bytes written. Returns
    bytes copied."""
    check_stop(should_stop)

    def between(n: int) -> None:
        if on_bytes is not None:
            on_bytes(n)
        check_stop(should_stop)

    return pump(src, dst, digest, between, error)


def copy_file(
    src: int,
    dst: int,
    on_bytes: OnBytes | None = None,
    should_stop: ShouldStop | None = None,
    error: ErrorMapper | None = None,
) -> tuple[int, str]:
    """`copy_checked` with a fresh sha256, in a copier process where one can
    run (else here): (bytes copied, sha256 hex of exactly those bytes)."""
    done = copier.copy(src, dst, on_bytes, should_stop, error)
    if done is not None:
        return done
    # The copy and hash on this thread: never at a normal priority
    # (a transfer thread may have started at one, inflight.py).
    priority.lower_if_started_normal()
    digest = hashlib.sha256()
    n = copy_checked(src, dst, digest, on_bytes, should_stop, error)
    return n, digest.hexdigest()
