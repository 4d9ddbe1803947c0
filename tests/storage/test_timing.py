"""The write path's timings (storage/timing.py): a TimedLock records waits and
holds by the code that took it, stays re-entrant, and the GC callback never
waits for the timings' own lock (it can fire inside any allocation)."""

from __future__ import annotations

import gc
import threading
import time

from storage import timing
from storage.timing import TIMINGS, TimedLock


def _hold_here(lock: TimedLock, seconds: float) -> None:
    with lock:
        time.sleep(seconds)


def test_timed_lock_records_wait_hold_and_holder() -> None:
    lock = TimedLock("test_kind")
    t = threading.Thread(target=_hold_here, args=(lock, 0.05), name="holder-thread")
    t.start()
    time.sleep(0.01)
    with lock, lock:  # waits for the holder; re-entrant: no second wait, one hold
        pass
    t.join()
    snap = TIMINGS.copy()
    assert snap["waits"]["test_kind"].peak >= 0.02
    sites = {site: h for (kind, site), h in snap["holds"].items() if kind == "test_kind"}
    assert any(s.startswith("_hold_here:") for s in sites), sites
    longest = [v for (kind, site), v in snap["longest"].items()
               if kind == "test_kind" and site.startswith("_hold_here:")]
    assert longest[0].thread == "holder-thread" and longest[0].seconds >= 0.04
    assert longest[0].cpu_seconds < longest[0].seconds  # it slept: little CPU


def test_plain_lock_is_not_reentrant() -> None:
    lock = TimedLock("test_plain", reentrant=False)
    with lock:
        assert lock.acquire(blocking=False) is False


def test_gc_callback_does_not_wait_for_the_timings_lock() -> None:
    timing.watch_gc()
    done = threading.Event()

    def collect_while_locked() -> None:
        with TIMINGS._lock:
            gc.collect()
        done.set()

    t = threading.Thread(target=collect_while_locked, daemon=True)
    t.start()
    t.join(10)
    assert done.is_set(), "the GC callback blocked on the timings' lock"
    assert TIMINGS.copy()["gc"][2].n >= 1
