"""The archive helper process: builds segment bodies off the server's GIL.

An archiver's cycle spent most of its CPU decoding the change-log entries and
building the body's per-table Arrow blocks (blocks.encode_body): Python code
that holds the GIL, in the server's process, on the 2 CPUs the writers use,
so the writers' p99 paid for it (docs/performance.md). One long-lived child
process per server now does that work: the archiver thread reads the entries
as stored (bytes, `ChangeLog.read_raw`), sends them through a pipe, and
waits for the body with the GIL released; it keeps everything else: the
mark, compression, encryption and checksums (`segment.seal`), the durable
write, the catalog batch that records the new end and trims the log. So the
segment's bytes are what the server alone would write, no secret or target
credential reaches the helper, and a crash of either leaves what it always
did: a segment whole or absent, the log holding everything not recorded as
shipped.

Protocol, on the child's stdin and stdout: a request is a 4-byte big-endian
length and the msgpack of a list of Changes (the entries concatenated behind
an array header, `RawChanges.msgpack`); a reply is a status byte (0: the body
follows; 1: an error message follows), the CPU seconds the child spent, the
length, then the body or message. The child exits when its stdin closes: when
the server stops it, exits or is killed (SIGKILL included: the kernel closes
the pipe), so no helper outlives its server. A helper that exits or answers
nothing within HELPER_TIMEOUT_S during a request fails the cycle (recorded in
system.archives like any archiving error, nothing shipped); the next cycle
starts a new one. One found dead between two requests (killed while idle) is
replaced at once: that request's body is built here while the new one starts."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec

from catalog.errors import Internal

from .blocks import encode_body
from .changes import Change

REQUEST = struct.Struct(">I")
REPLY = struct.Struct(">BdI")
READY = b"R"  # the child's first byte: its imports are done
HELPER_TIMEOUT_S = 120.0  # a body of a 16 MB backlog takes well under a second
MAX_MESSAGE = 4096
PIPE_BYTES = 1 << 20  # each pipe's capacity (Linux's default 64 KiB; 1 MiB is what an
# unprivileged process may ask, /proc/sys/fs/pipe-max-size): a cycle's ~1.5 MB
# of entries passes in 2 fills instead of ~25, so the helper is woken (and the
# server's threads preempted for it) a couple of times per cycle, not dozens


log = logging.getLogger("cairn.archive")
_decode_changes = msgspec.msgpack.Decoder(list[Change]).decode


class HelperFailed(Internal):
    """The helper process exited, broke the protocol, or took too long."""


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """`n` bytes from `fd`; None at end of file. Waits (GIL released) until
    `deadline` (time.monotonic()), TimeoutError after it."""
    parts = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        part = os.read(fd, min(n, 1 << 20))
        if not part:
            return None
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


IOV_MAX = 1024  # Linux's limit on the pieces of one writev


def _write_parts(fd: int, parts: list[bytes]) -> None:
    """The pieces in order, gathered by the kernel (writev): a large request is
    never copied into one buffer first (a fresh mapping of its size, hence a
    page fault per 4 KiB: storage/allocator.py pins the mmap threshold)."""
    for i in range(0, len(parts), IOV_MAX):
        chunk = parts[i:i + IOV_MAX]
        done = os.writev(fd, chunk)
        for part in chunk:  # a short write (a signal): the rest one by one
            if done >= len(part):
                done -= len(part)
                continue
            _write_all(fd, part[done:])
            done = 0


# --- the child --------------------------------------------------------------------


def serve(rfd: int, wfd: int) -> int:
    """The child's loop: a body for each request until `rfd` ends. It says
    READY first: its imports are done."""
    decode = msgspec.msgpack.Decoder(list[Change]).decode
    _write_all(wfd, READY)
    while True:
        head = _read_exact(rfd, REQUEST.size)
        if head is None:
            return 0
        payload = _read_exact(rfd, REQUEST.unpack(head)[0])
        if payload is None:
            return 0
        cpu = time.thread_time()
        try:
            body, status = encode_body(decode(payload)), 0
        except Exception as exc:  # a damaged entry: the server records it
            body, status = f"{type(exc).__name__}: {exc}".encode()[:MAX_MESSAGE], 1
        del payload
        _write_all(wfd, REPLY.pack(status, time.thread_time() - cpu, len(body)) + body)


def main() -> int:
    # The server decides when its helper stops (by closing the pipe), not a
    # Ctrl-C: it runs in a process group of its own (`_ensure`), and ignores one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wfd = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
    try:
        return serve(0, wfd)
    except BrokenPipeError:  # the server went first (stopped or killed): no one to answer
        return 0


# --- the server's side ------------------------------------------------------------


class BodyHelper:
    """The server's handle on its helper process (one per server, shared by
    every archiver; one request at a time). Started on first use, or ahead
    with `start` so its imports overlap other work. A helper that exits during
    a request fails it (HelperFailed), the next starts a new one; one that
    exited between two requests is replaced by the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False  # the current child said READY

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None or proc.poll() is not None else proc.pid

    def start(self) -> None:
        """Start the helper now, if none was started (or the last one failed)."""
        with self._lock:
            if self._proc is None:
                self._ensure()

    def _ensure(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:  # it died between two requests (the OOM killer): nothing
            self._reap(proc)  # was lost, a new one starts (before, this request failed,
            log.warning("the archive helper process exited (code %s); starting a new one",
                        proc.returncode)  # and a STOP ARCHIVING then shipped nothing)
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # the pipes are close-on-exec: only this process holds the write end of
        # the child's stdin, so the child sees it close when this process ends
        self._ready = False
        # A process group of its own, as a job process's (storage/jobproc.py):
        # a terminal's Ctrl-C reached it before `main` could ignore it. `-P`,
        # as there: no module of the working directory is imported.
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "storage.archive.helper"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, close_fds=True, bufsize=0, process_group=0)
        for pipe in (self._proc.stdin, self._proc.stdout):
            with contextlib.suppress(OSError):  # not allowed: the default size
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[union-attr]
        return self._proc

    def build(self, payload: list[bytes]) -> tuple[bytes, float | None]:
        """The segment body of `payload` (the msgpack of a list of Changes, in
        pieces: `RawChanges.parts`):
        from the helper once it is ready, with the CPU seconds it spent; built
        here (None) while a new helper is still starting, so a server's first
        cycles after start-up, START ARCHIVING or a helper failure ship on
        time (the RPO) rather than wait for its imports. HelperFailed when a
        helper that was started has died since."""
        with self._lock:
            proc = self._ensure()
            if not self._ready:
                assert proc.stdout is not None
                fd = proc.stdout.fileno()
                if select.select([fd], [], [], 0)[0]:
                    if os.read(fd, len(READY)) != READY:
                        self._reap(proc)
                        raise HelperFailed("the archive helper process exited while "
                                           "starting; a new one starts at the next cycle")
                    self._ready = True
        if self._ready:
            return self.body(payload)
        return encode_body(_decode_changes(b"".join(payload))), None

    def body(self, payload: list[bytes]) -> tuple[bytes, float]:
        """The segment body (blocks.encode_body) of `payload` (the msgpack of a
        list of Changes, in pieces), and the CPU seconds the helper spent on it.
        HelperFailed when the helper fails; BackupInvalid-like errors of the
        entries themselves come back as HelperFailed with the helper's message."""
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                if not self._ready:
                    if _read_exact(proc.stdout.fileno(), len(READY),
                                   time.monotonic() + HELPER_TIMEOUT_S) != READY:
                        raise EOFError
                    self._ready = True
                size = sum(map(len, payload))
                _write_parts(proc.stdin.fileno(), [REQUEST.pack(size), *payload])
                deadline = time.monotonic() + HELPER_TIMEOUT_S
                head = _read_exact(proc.stdout.fileno(), REPLY.size, deadline)
                if head is None:
                    raise EOFError
                status, cpu, size = REPLY.unpack(head)
                data = _read_exact(proc.stdout.fileno(), size, deadline)
                if data is None or status not in (0, 1):
                    raise EOFError
            except (OSError, EOFError, TimeoutError) as exc:
                self._reap(proc)
                code = proc.returncode
                why = ("answered nothing in time" if isinstance(exc, TimeoutError)
                       else f"exited (code {code})" if code is not None else "broke its pipe")
                raise HelperFailed(f"the archive helper process {why}; "
                                   "a new one starts at the next cycle") from None
        if status == 1:
            raise HelperFailed("the archive helper could not build the segment: "
                               + data.decode("utf-8", "replace"))
        return data, cpu

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if self._proc is proc:
            self._proc = None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the helper: its stdin closes, it exits (killed after `timeout`)."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            self._proc, self._ready = None, False
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
