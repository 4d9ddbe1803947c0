"""The copy loop of a raw local object, and the copier process that runs it.

This module imports nothing of Cairn (only the standard library): the server
runs it as a script (`python -I -S copyloop.py`) in a copier process
(storage/backup/copier.py), and in-process through storage/backup/fastcopy.py.

One step: `preadv` into one reused 1 MiB buffer, sha256 of it, `pwrite` of it,
so the bytes hashed are exactly the bytes stored (fastcopy.py says why this
shape). In the copier process the step runs under that process's own GIL, at
the background priority: the server's threads never wait for the GIL behind it.

The copier's protocol, one SOCK_SEQPACKET message each (`serve`):

- server -> copier: `C` with the source and destination fds attached
  (SCM_RIGHTS): copy all of source into destination. Or `V` + a
  size (8 bytes) with the source and a destination fd: read and hash all of
  source (VERIFY), writing only its last `size` bytes, at offset 0.
- copier -> server after each step: `P` + bytes moved (8 bytes). The copier then
  waits for `A` (go on) or `S` (stop: it closes both fds and waits for the next
  copy). So progress, throttle, give-way and cancel checks run between steps in
  the server exactly as they do in-process.
- copier -> server at the end: `D` + total bytes (8) + sha256 hex (64), or
  `E` + errno (4) + the error's text. The copier then closes both fds.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

STEP = 1024 * 1024  # bytes per read, hash and write (transfer.CHUNK_SIZE): keeps
# progress, throttle and cancel checks fine-grained and the buffer inside a
# core's L2 (4 MiB steps cost several times the system CPU here)
PIECE = 64 * 1024  # bytes per write through the page cache (see _Writer.write)
MAX_KEEP = 64 * 1024 * 1024  # the most a `V` request keeps of a source's tail

_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")


def pump(src: int, dst: int, digest: Any,
         between: Callable[[int], None] | None,
         error: Callable[[OSError], BaseException] | None = None,
         out: Any = None) -> int:
    """Copy all of `src` to `dst`, updating `digest` with exactly the bytes
    written; `between(n)` after each step (it may raise to stop). Returns
    bytes copied. OS errors of the copy itself go through `error`. `out`
    replaces the writer to `dst` (`Keep`: only the last bytes)."""
    buffer = mmap.mmap(-1, STEP)  # one reused buffer, unmapped when freed
    view = memoryview(buffer)
    if out is None:
        out = _Writer(dst)
    offset = 0
    while True:
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
        if between is not None:
            between(n)


class _Writer:
    """Writes to `fd` through the page cache, as `cp` writes (a backup's
    objects are then read from memory by a restore soon after; a restore's
    files written O_DIRECT took 1.5-1.8x the durable copy, docs/performance.md)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, view: memoryview, n: int, offset: int) -> None:
        written = 0
        while written < n:
            # In pieces of PIECE: one 1 MiB write makes the kernel allocate 1 MiB
            # folios, and as free memory fragments that cost 2.2-2.5 s of system
            # CPU for 519 MiB in one trial of two (0.26-0.32 s in pieces of
            # 256 KiB, every trial). And a kernel without preemption (this
            # machine's) lets a statement's thread onto a CPU only when the
            # SCHED_IDLE job's write returns: in 64 KiB pieces the main thread
            # waited ~0.1-0.2 ms per INSERT on the job process during a 1 GiB
            # BACKUP, in 256 KiB pieces 0.1-0.9 ms, for ~8% more copy CPU
            # (docs/performance.md, 2026-12-04).
            end = min(n, written + PIECE)
            written += os.pwrite(self.fd, view[written:end], offset + written)

    def finish(self, size: int) -> None:
        pass


class Keep:
    """A writer that keeps only the last `size` bytes of what passes (the
    content's tail, for VERIFY's footer check) and writes them to `fd` at
    offset 0 at the end: the bytes hashed are the bytes kept, never a second
    read of the source."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.data = bytearray()

    def write(self, view: memoryview, n: int, offset: int) -> None:
        if n >= self.size:
            self.data = bytearray(view[n - self.size:n])
            return
        self.data += view[:n]
        if len(self.data) > 2 * self.size:
            del self.data[: len(self.data) - self.size]

    def finish(self, size: int) -> None:
        last = memoryview(self.data)[-self.size:] if self.size else memoryview(b"")
        written = 0
        while written < len(last):
            written += os.pwrite(self.fd, last[written:], written)


class _Stop(Exception):
    """The server answered `S` between two steps."""


def serve(sock: socket.socket) -> None:
    """The copier process's loop: one copy per `C` message, until the server
    closes its end (or dies: the socket then reads empty)."""
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 2)
        except OSError:
            return
        if not msg:
            return
        kind = msg[:1]
        if len(fds) != 2 or kind not in (b"C", b"V") or (kind == b"V" and len(msg) != 9):
            for fd in fds:
                os.close(fd)
            return  # not the protocol: end, the server sees EOF
        src, dst = fds
        keep = Keep(dst, min(_U64.unpack_from(msg, 1)[0], MAX_KEEP)) if kind == b"V" else None

        def between(n: int) -> None:
            sock.send(b"P" + _U64.pack(n))
            answer = sock.recv(16)
            if answer != b"A":
                raise _Stop

        try:
            digest = hashlib.sha256()
            total = pump(src, dst, digest, between, out=keep)
            reply = b"D" + _U64.pack(total) + digest.hexdigest().encode()
        except _Stop:
            reply = b""
        except OSError as exc:
            reply = b"E" + _I32.pack(exc.errno or 0) + (exc.strerror or str(exc)).encode()[:4000]
        finally:
            os.close(src)
            os.close(dst)
        if reply:
            try:
                sock.send(reply)
            except OSError:
                return


def lower(nice: int) -> None:
    """The copier's priority: SCHED_IDLE (it runs only when no normal-priority
    thread of its group wants a CPU, and a statement's thread waking up takes
    the CPU from it at once), else the background nice value."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


if __name__ == "__main__":
    if len(sys.argv) > 2:  # the jobs' background level is on (storage/priority.py)
        lower(int(sys.argv[2]))
    serve(socket.socket(fileno=int(sys.argv[1])))
