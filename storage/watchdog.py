"""One thread that interrupts every query passing its deadline."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cairn.storage")

REFIRE = 0.05  # seconds between interrupts of a query past its deadline, until it stops


class Alarm:
    __slots__ = ("fired", "fn")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn: Callable[[], Any] | None = fn
        self.fired = False


class Watchdog:
    """One thread interrupts every query that passes its deadline (a
    `threading.Timer` per query costs a thread start and stop, ~0.3 ms).
    `disarm` and the firing hold the same lock, so once `disarm` returns the
    alarm can no longer interrupt anything (the cursor may be running the
    thread's next query by then). A fired alarm fires again every REFIRE
    seconds until disarmed: an interrupt sent before DuckDB starts the
    query is lost (`statement_timeout = 1` ms let one query in ~20 run to
    its end, 47 s)."""

    COMPACT = 4096

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Alarm]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._disarmed = 0

    def arm(self, timeout: float, fn: Callable[[], Any]) -> Alarm:
        alarm = Alarm(fn)
        deadline = time.monotonic() + timeout
        with self._cv:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="cairn-query-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._disarmed > self.COMPACT and self._disarmed * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2].fn is not None]
                heapq.heapify(self._heap)
                self._disarmed = 0
            wake = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._ids), alarm))
            if wake:
                self._cv.notify()
        return alarm

    def disarm(self, alarm: Alarm) -> bool:
        """Stop the alarm; True if it had already fired."""
        with self._cv:
            if alarm.fn is not None:
                alarm.fn = None
                self._disarmed += 1
            return alarm.fired

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _loop(self) -> None:
        with self._cv:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, alarm = heapq.heappop(self._heap)
                    if alarm.fn is None:
                        self._disarmed = max(0, self._disarmed - 1)
                        continue
                    alarm.fired = True
                    try:
                        alarm.fn()
                    except Exception:  # a cursor closed meanwhile
                        log.debug("query interrupt failed", exc_info=True)
                    # Again and again until disarmed: DuckDB drops an interrupt
                    # that comes before its query runs (a deadline that passed
                    # as the query was being started: it ran on unbounded).
                    heapq.heappush(self._heap, (now + REFIRE, next(self._ids), alarm))
                self._cv.wait(self._heap[0][0] - now if self._heap else None)
