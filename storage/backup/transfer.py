"""Streaming copies that hash as they go.

Objects can be many GiB, so nothing is ever read whole: bytes move through one
reused buffer, each chunk is hashed, counted for progress, and a cancel check
runs between chunks so KILL JOB takes effect within milliseconds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from catalog.errors import Cancelled

CHUNK_SIZE = 1024 * 1024

OnBytes = Callable[[int], None]
ShouldStop = Callable[[], bool]
ErrorMapper = Callable[[OSError], BaseException]


class Readable(Protocol):
    def readinto(self, buffer: Any, /) -> int | None: ...


class Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...


def check_stop(should_stop: ShouldStop | None) -> None:
    """Raise Cancelled if the caller asked to stop."""
    if should_stop is not None and should_stop():
        raise Cancelled("operation cancelled")


def copy(
    src: Readable,
    dst: Writable | None,
    digest: Any,
    on_bytes: OnBytes | None = None,
    should_stop: ShouldStop | None = None,
    read_error: ErrorMapper | None = None,
    write_error: ErrorMapper | None = None,
) -> int:
    """Copy `src` to `dst` (or just hash it when `dst` is None), updating `digest`.

    OS errors from each side go through their own mapper, so a failing target is
    reported as the target's fault and a failing source as the source's."""
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    total = 0
    while True:
        check_stop(should_stop)
        try:
            n = src.readinto(buffer) or 0
        except OSError as exc:
            raise (read_error(exc) if read_error else exc) from exc
        if n == 0:
            return total
        chunk = view[:n]
        digest.update(chunk)
        if dst is not None:
            try:
                dst.write(chunk)
            except OSError as exc:
                raise (write_error(exc) if write_error else exc) from exc
        total += n
        if on_bytes is not None:
            on_bytes(n)


def hash_file(path: str, should_stop: ShouldStop | None = None) -> tuple[str, int]:
    """sha256 and size of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as src:
        size = copy(src, None, digest, should_stop=should_stop)
    return digest.hexdigest(), size
