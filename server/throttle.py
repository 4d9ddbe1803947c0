"""What slows a job's transfer on purpose: a byte-rate limit (`[backup]
throttle_bytes_per_second`), so a large backup can run beside production
traffic without saturating the disk or the network (0 means no limit), and
the count of statements running (`Statements`), to which the transfer gives
way between chunks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import time
from collections.abc import Iterator
from contextvars import ContextVar

from storage.throttle import BURST_SECONDS as BURST_SECONDS
from storage.throttle import Throttle as Throttle

# The longest a transfer thread waits between two chunks for the statements
# running to end (`[jobs] give_way_ms`): with statements always running (many
# clients) a backup still moves a chunk per worker at least this often.
GIVE_WAY_SECONDS = 0.02
# How long after the last request ended a transfer still waits: a client in a
# loop sends its next statement within a few milliseconds, and transfer threads
# let go meanwhile would be mid-chunk, taking the GIL, when it arrives.
LINGER_SECONDS = 0.005
# A request that ends this soon after a transfer last waited arms the eventfd for
# the end of its linger even if no transfer waits at that moment (one is
# between two chunks): the next one to wait then sleeps in `poll` throughout.
RECENT_SECONDS = 1.0
# The counted request the running task (and the tasks it started) serves. A
# task can outlive its request (an archiver's loop started by START
# ARCHIVING): once the request has ended, `open` says so and the task no
# longer counts as part of it.
_counted: ContextVar[_Request | None] = ContextVar("cairn_counted_request", default=None)


class Statements:
    """The requests a client is waiting for (POST /api/sql, a pgwire query),
    counted while they run, and a place where a job's transfer threads wait
    for them to end (`give_way`, between chunks).

    On 2 CPUs a backup's copy and hash threads, even at nice 10, kept a
    single-row INSERT waiting: for a CPU, and for the GIL, which a lowered
    thread holding it gives back only when the CPU scheduler runs it again
    (docs/performance.md, "A backup that gives way to statements"). A transfer
    thread that waits here holds neither. A request that waits for its own job
    (BACKUP, RESTORE, ...) is not counted meanwhile (`waiting_for_job`).

    Requests are counted on the event loop's thread only, and that side never
    takes a lock a lowered thread could hold (a lowered thread preempted while
    holding it would make the request wait for it): the count is a list, and
    "none running" is an eventfd that is readable exactly then, which the
    transfer threads poll for without the GIL. It is made readable once the
    event loop has written the answer and the linger is over (`call_later`),
    not when the handler returns, and only while a transfer thread waits or
    waited in the last RECENT_SECONDS: with no job running a request costs no
    system call (~2 µs in all). A waiting thread has no timer of its own: it
    wakes when the eventfd is readable or its bound is up, since each wake-up
    of a lowered thread takes the GIL (docs/performance.md, "The copy out of
    the server process")."""

    def __init__(self, limit: float = GIVE_WAY_SECONDS) -> None:
        self.limit = limit  # seconds; 0: give_way never waits
        self.linger = LINGER_SECONDS
        self._running: list[None] = []
        self._idle_since = 0.0  # time.monotonic() when the last request ended
        self._waiting: list[None] = []  # transfer threads in give_way
        self._last_wait = -RECENT_SECONDS - 1.0  # time.monotonic() of the last give_way that waited
        self._signaled = False  # the eventfd holds a count (no request running)
        self._fd: int | None = None
        if hasattr(os, "eventfd"):
            self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def _signal(self) -> None:
        if self._fd is not None and not self._signaled:
            self._signaled = True
            os.eventfd_write(self._fd, 1)

    def started(self) -> None:
        self._running.append(None)
        if self._signaled and self._fd is not None:
            self._signaled = False
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)

    def ended(self) -> None:
        self._running.pop()
        if self._running:
            return
        self._idle_since = now = time.monotonic()
        if not self._waiting and now - self._last_wait > RECENT_SECONDS:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._signal_if_idle()
            return
        # Not before the answer is written (after the handler returns) and the
        # linger is over: threads woken earlier would take the GIL from it, or
        # be mid-chunk when the client's next statement comes.
        loop.call_later(self.linger, self._signal_if_idle)

    def _signal_if_idle(self) -> None:
        # Only while transfers wait or waited lately (no system calls while no
        # job runs): a thread that starts waiting within the linger finds the
        # eventfd readable once it is over, and sleeps in `poll` till then.
        if not self._running and (
                self._waiting or time.monotonic() - self._last_wait <= RECENT_SECONDS):
            self._signal()

    @property
    def running(self) -> int:
        return len(self._running)

    def request(self) -> _Request:
        """`with` it around one client request, from when it is read to its answer."""
        return _Request(self)

    @contextlib.contextmanager
    def waiting_for_job(self) -> Iterator[None]:
        """While a request waits for a job it started: not counted (the job
        would otherwise give way to the very statement waiting for it)."""
        served = _counted.get()
        if served is None or not served.open:
            yield
            return
        self.ended()
        try:
            yield
        finally:
            self.started()

    def give_way(self, limit: float | None = None) -> bool:
        """Return at once if no request has run for `linger` seconds, else once
        that is so or after `limit` seconds (default: the server's `[jobs]
        give_way_ms`), from any thread. True if it waited."""
        limit = self.limit if limit is None else limit
        if limit <= 0 or self._quiet(time.monotonic()):
            return False
        deadline = time.monotonic() + limit
        poll = None
        if self._fd is not None:
            poll = select.poll()
            poll.register(self._fd, select.POLLIN)
        self._waiting.append(None)
        try:
            while True:
                now = self._last_wait = time.monotonic()
                if now >= deadline or self._quiet(now):
                    return True
                if poll is None:  # no eventfd (not Linux): look every millisecond
                    time.sleep(0.001)
                elif poll.poll((deadline - now) * 1000):
                    # Readable: the linger after the last request is over. One
                    # wake-up per quiet spell, none per request: each wake-up of a
                    # lowered thread takes the GIL, and a statement on the event
                    # loop waited for it behind them.
                    if self._running:
                        time.sleep(0.001)  # a request started as it was signalled
                    elif not self._quiet(time.monotonic()):  # the timer ran a little early
                        time.sleep(max(0.0, self._idle_since + self.linger - time.monotonic()))
        finally:
            self._waiting.pop()

    def _quiet(self, now: float) -> bool:
        return not self._running and now - self._idle_since >= self.linger

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class _Request:
    """`Statements.request()`: a class, not a generator, for the hot path."""

    __slots__ = ("open", "statements", "token")

    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        self.open = False

    def __enter__(self) -> None:
        self.statements.started()
        self.open = True
        self.token = _counted.set(self)

    def __exit__(self, *_: object) -> None:
        _counted.reset(self.token)
        self.open = False
        self.statements.ended()
