"""Several objects in flight: the worker pool behind BACKUP and RESTORE.

One object at a time leaves a core idle while the other waits on an fsync,
and a network target idle between requests. So files are moved by a bounded
pool of threads (file I/O, hashlib and pyarrow's S3 calls all
release the GIL). Items start in order; at most `workers` run at once.

The first failure stops the run: nothing more is started, the items in
flight are told to stop (`stopping`, which their cancel checks consult) and
are waited for, then that first error is raised, so the caller's clean-up
(a backup lock abandoned, restored copies deleted) runs once nothing is
writing any more. `before(index)` runs in the caller's thread before each
item starts: where cancellation and fault points are checked.

`normal=True` starts the pool's threads at the process's own priority even
when the caller is a lowered job thread (storage/priority.py): for runs whose
items only hand fds to copier processes (SCHED_IDLE, they copy and hash) and
wait. Such a thread holds the GIL only for short steps (a send to its copier,
a poll, a lock), but at nice 10 it was preempted inside them, runnable and off
any CPU, while the event loop waited for the GIL 5-50 ms (docs/performance.md,
"The INSERT stalls' blocked time"). Work that does use a CPU on such a thread
(the in-process copy when no copier can run) lowers the thread first, and it
stays lowered."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from . import priority

T = TypeVar("T")

MAX_WORKERS = 16


def workers_for(kind: str) -> int:
    """Objects in flight for a target kind. Local copies are bound by the CPU
    (hashing) and the disk (fsync): twice the cores keeps both busy. Object
    storage is bound by round trips: more requests in flight, whatever the cores.
    An archive (one tar file, read and written in order) takes one at a time."""
    if kind == "archive":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if kind == "s3":
        return min(MAX_WORKERS, max(8, 2 * cores))
    return min(MAX_WORKERS, max(2, 2 * cores))


class InFlight:
    """One run's pool; `stopping` is True once an item failed (or the run was left)."""

    def __init__(self, workers: int, normal: bool = False) -> None:
        self.workers = max(1, workers)
        self.normal = normal
        self._stop = threading.Event()
        self._pending: set[Future[None]] = set()

    def drain(self) -> None:
        """From `before` (the submitting thread): wait for every item in flight
        (a pause must not report `paused` while objects are still moving)."""
        self._pending = _reap(self._pending, ALL_COMPLETED)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, items: Sequence[T], fn: Callable[[int, T], None],
            before: Callable[[int], None] | None = None,
            here: Callable[[int], bool] | None = None) -> None:
        """`fn(index, item)` for every item, `before(index)` first each time.
        Items `here(index)` says move nothing (an object stored already) run
        on this thread, in their turn; a pool starts only for two items or
        more that do (a BACKUP after a small change stored one file of seven
        and started seven threads for them)."""
        moving = len(items) if here is None else sum(1 for i in range(len(items)) if not here(i))
        if self.workers == 1 or moving <= 1:
            for index, item in enumerate(items):
                if before is not None:
                    before(index)
                fn(index, item)
            return
        self._pending = set()
        workers = min(self.workers, moving)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-transfer",
                                  initializer=priority.mark_started_normal if self.normal else None)
        if self.normal:
            # Started by the normal-priority thread: they do not inherit the
            # caller's lowered nice value, which they could not raise themselves.
            priority.at_normal_priority(lambda: _start_all(pool, workers))
        with pool:
            try:
                for index, item in enumerate(items):
                    if before is not None:
                        before(index)
                    if here is not None and here(index):
                        fn(index, item)
                        continue
                    while len(self._pending) >= self.workers:
                        self._pending = _reap(self._pending, FIRST_COMPLETED)
                    self._pending.add(pool.submit(fn, index, item))
                while self._pending:
                    self._pending = _reap(self._pending, FIRST_COMPLETED)
            except BaseException:
                self._stop.set()
                wait(self._pending)
                raise


def _start_all(pool: ThreadPoolExecutor, n: int) -> None:
    """Every one of the pool's `n` threads started now, by this thread (so they
    take its priority; a pool starts a thread in `submit`): `n` items that wait
    for each other keep each thread busy until all have started."""
    gate = threading.Barrier(n + 1)
    for _ in range(n):
        pool.submit(gate.wait, 30)
    gate.wait(30)


def _reap(pending: set[Future[None]], when: str) -> set[Future[None]]:
    """Wait for some of `pending`; raise the first error among those done."""
    done, rest = wait(pending, return_when=when)
    for future in done:
        error = future.exception()
        if error is not None:
            raise error
    return rest
