"""A statement's cancellation, as far as storage sees it.

A CancelRequest (pgwire) reached only the DuckDB query of a SELECT: the
query phase of an INSERT … SELECT, an UPDATE or a DELETE ran on, the client
was told 57014 "canceling statement" and the write landed seconds later.
Now the statement's `Stoppable` is this thread's for as long as it runs
(`stoppable`): every DuckDB query it runs can be interrupted, and its write
asks `commit_point` before it commits: a statement cancelled by then raises
CANCELLED and writes nothing; one past it has committed and is not
cancelled any more (its client is told it completed). The registry's DDL
(CREATE / DROP of a namespace or table, ALTER TABLE) asks it too, once it
holds its locks: a DDL cancelled while it waited for them changes nothing.

The statement's time limit is this thread's too (`time_limit`, set by
`Engine.time_limit`): it bounds every DuckDB query the statement runs, and
its work in Python (an INSERT … SELECT's rows, an UPDATE's new values,
converted into the table's form) asks `check` between chunks of values, and
`commit_point` again: past it, CANCELLED as a query past it gets, and
nothing is written (800,000 rows converted for 4.6 s against a 3 s timeout,
then committed)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from catalog.errors import Cancelled


class Stoppable(Protocol):
    def target(self, fn: Callable[[], Any] | None) -> None:
        """Given the running DuckDB cursor's interrupt (None: it is done)."""

    def commit(self) -> bool:
        """False if cancelled; else the statement is past cancelling from now on."""

    @property
    def fired(self) -> bool:
        """Cancelled (read without a lock: `commit` decides)."""


_local = threading.local()

# Values a write converts in Python between two `check`s (~1 µs each).
CHECK_CELLS = 1 << 15


@contextlib.contextmanager
def _kept(name: str, value: Any) -> Iterator[None]:
    """This thread's `name` is `value` inside the block, as it was after."""
    prev = getattr(_local, name, None)
    setattr(_local, name, value)
    try:
        yield
    finally:
        setattr(_local, name, prev)


def stoppable(stop: Stoppable | None) -> contextlib.AbstractContextManager[None]:
    """What this thread runs inside the block can be stopped through `stop`."""
    return _kept("stop", stop)


def target() -> Callable[[Callable[[], Any] | None], None] | None:
    """Where a DuckDB query this thread starts hands over its interrupt."""
    stop: Stoppable | None = getattr(_local, "stop", None)
    return stop.target if stop is not None else None


def limited(until: float, seconds: float) -> contextlib.AbstractContextManager[None]:
    """Inside the block this thread's statement ends at monotonic `until`
    (`seconds` from its start, for the message); `Engine.time_limit` keeps
    an enclosing block's earlier end."""
    return _kept("limit", (until, seconds))


def time_limit() -> tuple[float, float] | None:
    """This thread's statement limit: (monotonic end, its seconds), or None."""
    return getattr(_local, "limit", None)


def deadline(timeout: float | None) -> tuple[float | None, float | None]:
    """When a query this thread starts now ends (monotonic; None: never) and
    its bound in seconds: `timeout` from now, or the statement's limit
    (`time_limit`) if that ends first. The engine's queries, the pgwire
    catalog's, the private DuckDB's casts (storage/spelling.py)."""
    end = time.monotonic() + timeout if timeout else None
    limit = time_limit()
    if limit is not None and (end is None or limit[0] < end):
        return limit
    return end, timeout


def overdue(seconds: float | None) -> Cancelled:
    """The error of a statement past its time limit (a query's, a write's)."""
    return Cancelled(f"query cancelled: it ran longer than {seconds} s")


def _refuse_overdue() -> None:
    limit = time_limit()
    if limit is not None and time.monotonic() >= limit[0]:
        raise overdue(limit[1])


_CANCELLED = "query cancelled at the client's request: nothing was written"


def check() -> None:
    """Between chunks of a statement's work in Python (thousands of values,
    never one: it reads the clock): CANCELLED if the statement is past its
    time limit or was cancelled. Nothing is written after it raises."""
    _refuse_overdue()
    stop: Stoppable | None = getattr(_local, "stop", None)
    if stop is not None and stop.fired:
        raise Cancelled(_CANCELLED)


def spans(total: int, step: int = CHECK_CELLS) -> Iterator[slice]:
    """The slices of `total` items, `step` a slice, a `check` before each:
    a statement's work in Python, in chunks its timeout and cancel stop."""
    for start in range(0, total, step):
        check()
        yield slice(start, start + step)


def commit_point() -> None:
    """Called just before a write commits: CANCELLED if the statement was
    cancelled or is past its time limit."""
    _refuse_overdue()
    stop: Stoppable | None = getattr(_local, "stop", None)
    if stop is not None and not stop.commit():
        raise Cancelled(_CANCELLED)
