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
free at once) the rest are taken in order, blocking, as before."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

ROUNDS = 200


def _locks(states: Sequence[Any]) -> list[Any]:
    """Each table's flush_lock then write_lock, tables by uid (the lock order)."""
    return [lock for st in sorted(states, key=lambda s: s.uid)
            for lock in (st.flush_lock, st.write_lock)]


@contextlib.contextmanager
def all_held(states: Sequence[Any]) -> Iterator[None]:
    """Every table's flush_lock and write_lock held (see the module's doc)."""
    locks = _locks(states)
    held: list[Any] = []  # what this thread holds, the lock waited for alone too

    def let_go() -> None:
        for lock in reversed(held):
            lock.release()
        held.clear()

    try:
        for _ in range(ROUNDS):
            busy = None
            for lock in locks:
                if any(lock is h for h in held):
                    continue
                if not lock.acquire(False):
                    busy = lock
                    break
                held.append(lock)
            if busy is None:
                break
            let_go()
            busy.acquire()  # waited for with nothing else held
            held.append(busy)
        else:  # busy all along: every lock in order, blocking, as before
            let_go()
            for lock in locks:
                lock.acquire()
                held.append(lock)
        yield
    finally:
        let_go()
