"""Copier processes: where a raw local object is read, hashed and written.

A transfer thread in the server hands the two fds of one copy to a copier
process (SCM_RIGHTS over a socket pair) and waits; the copier runs
copyloop.pump and reports each 1 MiB step. Between two steps the copier waits
for the thread's answer, and the thread meanwhile does what it did between
two chunks in-process: progress, the byte-rate throttle, giving way to
statements, the cancel check. So every guarantee stays where it was: the
sha256 is of exactly the bytes written (computed in the copier, checked by
the caller against the one recorded at flush), a job that is killed stops
within POLL_SECONDS plus one step, the caller still fsyncs, publishes and
cleans up.

Why a process: in-process, a 1 MiB step took the GIL back ~7 times (the read,
the hash, the writes in 256 KiB pieces then, progress), from threads at nice
10 that the scheduler runs last; a single-row INSERT on the event loop thread
that needed the GIL meanwhile waited for one of them to be scheduled again (5-18 ms
stretches asleep in a futex, woken by a transfer thread: docs/performance.md,
"The copy out of the server process"). In a copier the hash and the copies
hold only the copier's own GIL; the server's thread takes its GIL ~3 times a
step (the poll, the receive, the answer) for a few microseconds of Python.

Copiers are started on first use (`python -I -S copyloop.py`, ~20 ms, standard
library only), run at the jobs' background nice value (storage/priority.py),
are kept for the next copy (at most KEEP idle), and end when the server
closes its end or exits. One that cannot start, or ends mid-copy, leaves the
copy to the caller's thread (`copy` returns None)."""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import threading

from catalog.diskerrors import shortage

from .. import priority
from . import copyloop
from .transfer import ErrorMapper, OnBytes, ShouldStop, check_stop

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often a waiting transfer thread checks for a cancel
KEEP = 8  # idle copiers kept for the next copies

_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_SUPPORTED = os.name == "posix" and hasattr(socket, "send_fds") and hasattr(select, "poll")
_enabled = _SUPPORTED and os.environ.get("CAIRN_COPIER", "process") != "thread"
_idle: list[_Copier] = []
_busy: list[_Copier] = []
_guard = threading.Lock()
started = 0  # copier processes started (for tests and benches)


class _Lost(Exception):
    """The copier ended (or answered outside the protocol) mid-copy."""


class _Copier:
    """One copier process and the server's end of its socket."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            nice = priority.background_nice()
            args = [sys.executable, "-I", "-S", copyloop.__file__, str(theirs.fileno())]
            # A process group of its own: a terminal's Ctrl-C is the server's
            # (as a job process's, storage/jobproc.py), not a traceback here.
            self.proc = subprocess.Popen(
                [*args, str(nice)] if nice else args, pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, process_group=0)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.poll = select.poll()
        self.poll.register(ours.fileno(), select.POLLIN)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def receive(self, should_stop: ShouldStop | None) -> bytes:
        """The copier's next message, checking for a cancel while it works."""
        while not self.poll.poll(POLL_SECONDS * 1000):
            check_stop(should_stop)
        try:
            return self.sock.recv(8192)
        except OSError as exc:
            raise _Lost from exc

    def end(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def enabled() -> bool:
    """Whether copies go to copier processes (else the caller's thread)."""
    return _enabled


def set_enabled(on: bool) -> None:
    """Copies in copier processes (True, where the platform allows) or on the
    caller's thread (False, and what CAIRN_COPIER=thread sets at start)."""
    global _enabled
    _enabled = on and _SUPPORTED


def copy(
    src: int,
    dst: int,
    on_bytes: OnBytes | None,
    should_stop: ShouldStop | None,
    error: ErrorMapper | None,
) -> tuple[int, str] | None:
    """Copy all of `src` to `dst` (fds; `dst` empty) in a copier process:
    (bytes copied, sha256 hex of exactly those bytes), or None when no copier
    could do it (the caller then copies itself; `dst` is empty again)."""
    if not _enabled:
        return None
    check_stop(should_stop)
    return _exchange(b"C", src, dst, on_bytes, should_stop, error)


def check(
    src: int,
    tail: int,
    on_bytes: OnBytes | None,
    should_stop: ShouldStop | None,
    error: ErrorMapper | None,
) -> tuple[int, str, bytes] | None:
    """Read and hash all of `src` (an fd) in a copier process, for VERIFY:
    (bytes read, sha256 hex of exactly those bytes, the last `tail` of them),
    or None when no copier could do it (the caller then reads it itself)."""
    if not _enabled or not hasattr(os, "memfd_create"):
        return None
    check_stop(should_stop)
    kept = os.memfd_create("cairn-tail", os.MFD_CLOEXEC)
    try:
        done = _exchange(b"V" + _U64.pack(tail), src, kept, on_bytes, should_stop, error)
        if done is None:
            return None
        want = min(tail, done[0])
        last = os.pread(kept, want, 0) if want else b""  # one read: a file in memory
        if len(last) != want:  # never: the copier writes the whole tail before it answers
            log.warning("copier kept %d of %d tail bytes; reading on this thread",
                        len(last), want)
            return None
        return done[0], done[1], last
    finally:
        os.close(kept)


def _exchange(
    head: bytes,
    src: int,
    dst: int,
    on_bytes: OnBytes | None,
    should_stop: ShouldStop | None,
    error: ErrorMapper | None,
) -> tuple[int, str] | None:
    """One request `head` with `src` and `dst` to a copier, answering its steps:
    its (bytes, sha256), or None when no copier could do it."""
    copier = _take()
    if copier is None:
        return None
    with _guard:
        _busy.append(copier)
    clean = False  # the copier is between copies and may be used again
    failed: OSError | None = None
    passing: BaseException | None = None  # raised between two steps: the caller's
    try:
        socket.send_fds(copier.sock, [head], [src, dst])
        while True:
            msg = copier.receive(should_stop)
            kind = msg[:1]
            if kind == b"P" and len(msg) == 9:
                try:
                    if on_bytes is not None:
                        on_bytes(_U64.unpack_from(msg, 1)[0])
                    check_stop(should_stop)
                except BaseException as exc:
                    passing = exc
                    with contextlib.suppress(OSError):
                        copier.sock.send(b"S")  # it closes both fds, waits for the next copy
                        clean = True
                    raise
                copier.sock.send(b"A")
            elif kind == b"D" and len(msg) == 73:
                clean = True
                return _U64.unpack_from(msg, 1)[0], msg[9:].decode("ascii")
            elif kind == b"E" and len(msg) >= 5:
                clean = True
                failed = OSError(_I32.unpack_from(msg, 1)[0], msg[5:].decode("utf-8", "replace"))
                break
            else:
                raise _Lost(f"copier {copier.pid}: {msg[:16]!r}")
    except (_Lost, OSError) as exc:
        if clean or exc is passing:
            raise
        log.warning("copier process %s ended mid-copy (%s); copying on this thread",
                    copier.pid, exc)
        os.ftruncate(dst, 0)
        return None
    finally:
        with _guard:
            _busy.remove(copier)
        if clean:
            _give_back(copier)
        else:
            copier.end()
    raise (error(failed) if error else failed) from None


def _take() -> _Copier | None:
    global started, _enabled
    with _guard:
        if _idle:
            return _idle.pop()
    try:
        copier = _Copier()
    except OSError as exc:
        # Too many open files now, or processes (EAGAIN: ulimit -u, a cgroup's
        # pids.max): not for good. EAGAIN turned copiers off until a restart
        # until 2026-12-08.
        if shortage(exc) is not None or exc.errno == errno.EAGAIN:
            log.warning("cannot start a copier process now (%s); this copy runs in the "
                        "server's thread", exc)
            return None
        log.warning("cannot start a copier process (%s); copies run in the server's threads",
                    exc)
        _enabled = False
        return None
    with _guard:
        started += 1
    return copier


def _give_back(copier: _Copier) -> None:
    with _guard:
        if len(_idle) < KEEP and copier.proc.poll() is None:
            _idle.append(copier)
            return
    copier.end()


def idle_pids() -> list[int]:
    with _guard:
        return [c.pid for c in _idle]


def busy_pids() -> list[int]:
    with _guard:
        return [c.pid for c in _busy]


@atexit.register
def close_all() -> None:
    """End the idle copiers (each ends when its socket closes)."""
    with _guard:
        copiers = list(_idle)
        _idle.clear()
    for copier in copiers:
        copier.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            copier.proc.wait(1.0)
        if copier.proc.poll() is None:
            copier.end()
