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
holds its locks: a DDL cancelled while it waited for them changes nothing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from catalog.errors import Cancelled


class Stoppable(Protocol):
    def target(self, fn: Callable[[], Any] | None) -> None:
        """Given the running DuckDB cursor's interrupt (None: it is done)."""

    def commit(self) -> bool:
        """False if cancelled; else the statement is past cancelling from now on."""


_local = threading.local()


@contextlib.contextmanager
def stoppable(stop: Stoppable | None) -> Iterator[None]:
    """What this thread runs inside the block can be stopped through `stop`."""
    prev = getattr(_local, "stop", None)
    _local.stop = stop
    try:
        yield
    finally:
        _local.stop = prev


def target() -> Callable[[Callable[[], Any] | None], None] | None:
    """Where a DuckDB query this thread starts hands over its interrupt."""
    stop: Stoppable | None = getattr(_local, "stop", None)
    return stop.target if stop is not None else None


def commit_point() -> None:
    """Called just before a write commits: CANCELLED if the statement was cancelled."""
    stop: Stoppable | None = getattr(_local, "stop", None)
    if stop is not None and not stop.commit():
        raise Cancelled("query cancelled at the client's request: nothing was written")
