"""The clock of buffered rows' write times (`cairn.ts`): a stream row's age
(`ttl_seconds`) and a buffer's oldest row (`flush_interval_seconds`) are
measured by it.

It is the wall clock read once at start, then moved on by the monotonic clock,
so a step of the wall clock while the server runs (an NTP step, a date set by
hand) moves no row's age: on the wall clock a 2-minute step forward evicted
stream rows 4 s old for good, and a step back kept rows of a 2 s TTL for an
hour. Across a restart it never starts below the newest buffered row's time
(`floor_at`, as tables load): with the clock set back an hour, the buffered
rows waited an hour to be flushed. Slewing (NTP's gradual corrections) moves
the monotonic clock too, so it keeps to the wall clock but for steps."""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_offset = time.time() - time.monotonic()  # wall time minus monotonic, at start


def now() -> float:
    """Seconds since the epoch, by a clock that does not jump."""
    return _offset + time.monotonic()


def floor_at(ts: float) -> None:
    """Never below `ts` from now on (a buffered row's time, kept by an earlier
    process whose wall clock was ahead of this one's)."""
    global _offset
    with _lock:
        behind = ts - now()
        if behind > 0:
            _offset += behind
