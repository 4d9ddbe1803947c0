"""The flush and write locks of many tables at once, never holding some while
waiting for another (what a restore's install and DROP NAMESPACE take).

Taken in order, blocking, as they were until 2026-12-07, a RESTORE ... WITH
(replace = true) that met one table's lock held by a slow statement (an
UPDATE running to the query timeout, a long FLUSH) waited for it holding
the locks of the tables before it: a one-row INSERT into another table of the
namespace waited 58.5 s behind a slow UPDATE of its neighbour, and would have
been CANCELLED past its own time limit. Now the locks are tried without
waiting; at the first one held elsewhere, everything taken is let go, that
one is waited for alone (and kept), and the others are tried again. Nothing is
waited for while anything else is held, so no lock order can deadlock, and a
writer of another table waits only for the install's own short hold. After
`ROUNDS` rounds of meeting busy locks (writers never letting all of them be
free at once) the rest are taken in order, blocking, as before.

The wait for a busy lock is in slices of `SLICE` s, and between them it asks
whether to stop: a statement's cancel or time limit (`stopping.check`: DROP
NAMESPACE, cancelled by its client) and a job's KILL or PAUSE
(`Work.check_cancelled`: a restore's install). Until 2026-12-07 it asked
nothing: a KILL JOB of a restore waiting behind a slow UPDATE answered
"completed before the kill could stop it" once the UPDATE ended, and the
restore installed. A PAUSE parks the job there, holding nothing (a wait in
the blocking rounds, which hold locks, stops at a KILL only). A wait longer
than a slice is shown on the job's row (`Work.waiting`: `system.jobs`'
`waiting_for`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from catalog.errors import Cancelled

from . import stopping
from .timing import TimedLock
from .work import Work

ROUNDS = 200
SLICE = 0.05  # s between a waiter's looks at its cancel (and its pause)


def _locks(states: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Each table's flush_lock then write_lock, tables by uid (the lock order),
    each with its table's state."""
    return [(lock, st) for st in sorted(states, key=lambda s: s.uid)
            for lock in (st.flush_lock, st.write_lock)]


def _what(lock: Any, st: Any) -> str:
    """The lock as a job's row names it: "the write lock of table app.t"."""
    return f"the {getattr(lock, 'kind', 'table')} lock of table {st.table.namespace}.{st.table.name}"


def _stop_if_asked(work: Work | None, holding: bool, what: str = "") -> None:
    """Raise if the waiter is to stop: a statement's cancel or time limit, a
    job's KILL; a job's PAUSE parks it here when it holds nothing."""
    stopping.check()
    if work is None:
        return
    if not holding:
        parks = work.pause_requested and not work.cancelled
        if parks:  # parked, it waits for a RESUME, not the lock: the row says so
            work.waiting(None)
        work.check_cancelled()  # a KILL raises, a PAUSE parks (nothing held)
        if parks:
            work.waiting(what)
    elif work.cancelled:
        work.check_cancelled()  # raises: cancelled
        raise Cancelled("the work was cancelled while it waited for a table lock")


def _wait(lock: Any, st: Any, work: Work | None, holding: bool) -> None:
    """`lock.acquire()`, stopping as `_stop_if_asked` says between slices; a
    wait past the first slice named on the job's row while it lasts."""
    t0 = time.perf_counter()
    if lock.acquire(True, SLICE):
        return
    what = _what(lock, st)
    if work is not None:
        work.waiting(what)
    try:
        while True:
            _stop_if_asked(work, holding, what)
            if lock.acquire(True, SLICE):
                if isinstance(lock, TimedLock):  # the whole wait, not its last slice
                    lock._waited = time.perf_counter() - t0
                return
    finally:
        if work is not None:
            work.waiting(None)


@contextlib.contextmanager
def all_held(states: Sequence[Any], work: Work | None = None) -> Iterator[None]:
    """Every table's flush_lock and write_lock held (see the module's doc).
    `work`: the job whose KILL and PAUSE stop the waits, shown on its row."""
    locks = _locks(states)
    held: list[Any] = []  # what this thread holds, the lock waited for alone too

    def let_go() -> None:
        for lock in reversed(held):
            lock.release()
        held.clear()

    try:
        for _ in range(ROUNDS):
            busy = None
            for lock, st in locks:
                if any(lock is h for h in held):
                    continue
                if not lock.acquire(False):
                    busy = (lock, st)
                    break
                held.append(lock)
            if busy is None:
                break
            let_go()
            _wait(*busy, work, holding=False)  # waited for with nothing else held
            held.append(busy[0])
        else:  # busy all along: every lock in order, blocking, as before
            let_go()
            for lock, st in locks:
                _wait(lock, st, work, holding=bool(held))
                held.append(lock)
        yield
    finally:
        let_go()
