"""Where writes wait: latency histograms of the commit path's phases, of every
table lock's waits and holds (by the code that took it), the longest hold seen
per site with the CPU its thread used meanwhile, and Python GC pauses.

One process-wide `TIMINGS` (the locks are made deep inside TableState); the
server's /metrics reads it at scrape time (server/metrics.py). A hold whose
thread used far less CPU than wall time was waiting, not working: for the GIL
(other threads ran), for I/O, or for a lock nested inside it. The cost is two
clock reads per acquire and two per release, and one round of `Timings`'s own
lock per hold (the wait before a hold is recorded with it, at release)."""

from __future__ import annotations

import bisect
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import stopping

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, float("inf"))


@dataclass
class Hist:
    """Cumulative-bucket histogram (Prometheus shape) of seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    n: int = 0
    peak: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1
        if seconds > self.peak:
            self.peak = seconds

    def buckets(self) -> list[tuple[str, int]]:
        out, acc = [], 0
        for bound, c in zip(BUCKETS, self.counts, strict=True):
            acc += c
            out.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        return out


@dataclass
class Hold:
    """The longest hold of one lock kind from one site."""

    seconds: float
    cpu_seconds: float  # the holding thread's CPU time during the hold
    thread: str
    at: float  # unix time it ended


class Timings:
    """Histograms by name: phases of the commit path, lock waits, lock holds,
    GC pauses. Observations from many threads: a lock keeps the counts exact."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phases: dict[str, Hist] = {}
        self.waits: dict[str, Hist] = {}
        self.holds: dict[tuple[str, str], Hist] = {}
        self.longest: dict[tuple[str, str], Hold] = {}
        self.gc: dict[int, Hist] = {}

    def phase(self, name: str, seconds: float) -> None:
        with self._lock:
            hist = self.phases.get(name)
            if hist is None:
                hist = self.phases[name] = Hist()
            hist.observe(seconds)

    def timed(self, name: str) -> _Timed:
        """`with TIMINGS.timed("commit"):` records the block's wall time as a phase."""
        return _Timed(self, name)

    def lock_wait(self, kind: str, seconds: float) -> None:
        with self._lock:
            hist = self.waits.get(kind)
            if hist is None:
                hist = self.waits[kind] = Hist()
            hist.observe(seconds)

    def lock_hold(self, kind: str, site: str, seconds: float, cpu: float,
                  waited: float | None = None) -> None:
        """One hold; with `waited`, also the wait before it (one lock round for both)."""
        key = (kind, site)
        with self._lock:
            if waited is not None:
                wait = self.waits.get(kind)
                if wait is None:
                    wait = self.waits[kind] = Hist()
                wait.observe(waited)
            hist = self.holds.get(key)
            if hist is None:
                hist = self.holds[key] = Hist()
            hist.observe(seconds)
            best = self.longest.get(key)
            if best is None or seconds > best.seconds:
                self.longest[key] = Hold(seconds, cpu, threading.current_thread().name, time.time())

    def gc_pause(self, generation: int, seconds: float) -> None:
        """Called from the GC callback, which can run inside any allocation,
        also one made while `_lock` is held: so no lock here (only this
        callback writes `gc`, and the collector does not run twice at once)."""
        hist = self.gc.get(generation)
        if hist is None:
            hist = self.gc[generation] = Hist()
        hist.observe(seconds)

    def copy(self) -> dict[str, Any]:
        """A consistent copy for a scrape."""
        with self._lock:
            def clone(h: Hist) -> Hist:
                return Hist(list(h.counts), h.total, h.n, h.peak)
            return {
                "phases": {k: clone(v) for k, v in self.phases.items()},
                "waits": {k: clone(v) for k, v in self.waits.items()},
                "holds": {k: clone(v) for k, v in self.holds.items()},
                "longest": dict(self.longest),
                "gc": {k: clone(v) for k, v in list(self.gc.items())},
            }


class _Timed:
    """The context manager of `Timings.timed` (a class: a generator-based one
    costs a few microseconds more, and the commit path enters five)."""

    __slots__ = ("name", "t0", "timings")

    def __init__(self, timings: Timings, name: str) -> None:
        self.timings, self.name, self.t0 = timings, name, 0.0

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings.phase(self.name, time.perf_counter() - self.t0)


TIMINGS = Timings()


def _site() -> str:
    """`function:line` of the code that took a lock (this module's frames and
    contextlib's skipped)."""
    f: Any = sys._getframe(2)
    while f is not None and (f.f_code.co_filename == __file__
                             or "contextlib" in f.f_code.co_filename):
        f = f.f_back
    return "?" if f is None else f"{f.f_code.co_name}:{f.f_lineno}"


class WouldWait(Exception):  # noqa: N818 (a signal, not an error)
    """Raised in a thread that asked not to wait (`no_waiting`) where it would
    have: a table lock another thread holds, or a DuckDB query. Nothing the
    statement did before it is visible; the caller runs it again where
    waiting is fine (the server's statement threads), or, when `lock` is
    set (a TimedLock another thread held), once `lock.when_free` says it
    was let go."""

    def __init__(self, what: str, lock: TimedLock | None = None) -> None:
        super().__init__(what)
        self.lock = lock
        # The statement's time limit (stopping.time_limit): how long its wait
        # for `lock` may last (Cairn.run_small).
        self.limit = stopping.time_limit() if lock is not None else None


class _Mode(threading.local):
    on = False  # a class default: no thread's getattr misses (a miss costs ~1 µs)


_mode = _Mode()


class _NoWaiting:
    """The context manager of `no_waiting` (a class: one per one-row statement)."""

    __slots__ = ("prev",)

    def __enter__(self) -> None:
        self.prev = _mode.on
        _mode.on = True

    def __exit__(self, *exc: object) -> None:
        _mode.on = self.prev


def no_waiting() -> _NoWaiting:
    """Inside the block, this thread raises WouldWait instead of waiting for a
    table lock (`TimedLock`) or running DuckDB (`Engine.run_plan`): how the
    server runs a one-row statement on its event loop (server/inline.py)."""
    return _NoWaiting()


def waiting_allowed() -> bool:
    return not _mode.on


class _Taking:
    """The context manager of `taking` (a class: one or two per statement)."""

    __slots__ = ("lock", "what")

    def __init__(self, lock: Any, what: str) -> None:
        self.lock, self.what = lock, what

    def __enter__(self) -> None:
        if _mode.on:
            if not self.lock.acquire(False):
                raise WouldWait(f"the {self.what} lock is held")
        else:
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


_SLICE = 0.05  # s between a waiting statement's looks at its cancel and time limit


@contextlib.contextmanager
def bounded(lock: TimedLock) -> Iterator[None]:
    """`with lock:` for a statement waiting for a table lock another statement
    holds: it waits at most until its time limit (CANCELLED "ran longer
    than ...", as a query past it) and stops at its cancel, looking at both
    every _SLICE s (it waited for the holder's whole run: 3x its own
    timeout behind a loop of slow UPDATEs). Inside `no_waiting`, WouldWait."""
    if _mode.on:
        if not lock.acquire(False):
            raise WouldWait(f"the {lock.kind} lock is held", lock)
    elif not lock.acquire(False):
        t0 = time.perf_counter()
        while True:
            stopping.check()
            limit = stopping.time_limit()
            wait = _SLICE if limit is None else min(_SLICE, max(0.0, limit[0] - time.monotonic()))
            if lock.acquire(True, wait):
                lock._waited = time.perf_counter() - t0  # the whole wait, not its last slice
                break
    try:
        yield
    finally:
        lock.release()


def taking(lock: Any, what: str) -> _Taking:
    """`with lock:` for a plain (R)Lock on the path of a one-row statement;
    inside `no_waiting`, a lock another thread holds raises WouldWait instead
    of blocking the event loop (the table registry's lock while a thread loads
    a table's buffer, an archived namespace's commit lock while START
    ARCHIVING scans its log)."""
    return _Taking(lock, what)


class TimedLock:
    """A (re-entrant by default) lock that records, in `TIMINGS`, how long each
    acquire waited and how long each outermost hold lasted, by the site that
    took it. Used for the table locks (buffer.py)."""

    __slots__ = ("_cpu", "_depth", "_lock", "_owner", "_since", "_site", "_waited", "_woken",
                 "kind")

    def __init__(self, kind: str, reentrant: bool = True) -> None:
        self.kind = kind
        self._lock: Any = threading.RLock() if reentrant else threading.Lock()
        self._depth = 0
        self._owner = 0
        self._since = 0.0
        self._cpu = 0.0
        self._site = ""
        self._waited = 0.0
        self._woken: list[Callable[[], None]] = []  # see when_free

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        t0 = time.perf_counter()
        if blocking and _mode.on:
            if not self._lock.acquire(False):
                raise WouldWait(f"the {self.kind} lock is held", self)
        elif not self._lock.acquire(blocking, timeout):
            return False
        if self._depth == 0:
            now = time.perf_counter()
            self._waited = now - t0  # recorded with the hold, at release
            self._since, self._cpu = now, time.thread_time()
            self._site = _site()
            self._owner = threading.get_ident()
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            held = time.perf_counter() - self._since
            cpu = time.thread_time() - self._cpu
            site, waited, self._owner = self._site, self._waited, 0
            self._lock.release()
            if self._woken:  # one list swap: a callback added meanwhile is in one of the two
                woken, self._woken = self._woken, []
                for wake in woken:
                    wake()
            TIMINGS.lock_hold(self.kind, site, held, cpu, waited)
            return
        self._lock.release()

    def when_free(self, wake: Callable[[], None]) -> bool:
        """True if no thread holds the lock now; else False, and `wake()` is
        called (once, from the thread that lets it go, so it must not raise
        or block) at the next outermost release. How a statement that met
        the lock on the event loop waits without a thread (Cairn.run_small):
        on a thread it would hold the lock while it waits for the GIL, and
        the next statements would meet it held and follow it there."""
        self._woken.append(wake)
        if not self._lock.acquire(False):
            return False
        self._lock.release()
        with contextlib.suppress(ValueError):  # a release took the list first: it calls `wake`
            self._woken.remove(wake)
        return True

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


_gc_started: dict[int, float] = {}


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    gen = int(info.get("generation", 0))
    if phase == "start":
        _gc_started[gen] = time.perf_counter()
    else:
        t0 = _gc_started.pop(gen, None)
        if t0 is not None:
            TIMINGS.gc_pause(gen, time.perf_counter() - t0)


def watch_gc() -> None:
    """Time every cyclic-GC pass (once per process)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
