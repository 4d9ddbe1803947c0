"""A statement's calls to an object-storage target, each with a deadline.

A statement that reads a target itself (SHOW BACKUPS IN, SHOW BACKUP, the
checks a BACKUP, RESTORE, VERIFY or DROP BACKUP makes before its job exists)
used to wait on the target as long as it took: an endpoint that drips its
answers (a byte every 0.4 s is fast enough for the SDK never to time out) or
lists forever (the same continuation token in every page) held the client,
and a statement thread, for good; eight of them stalled every statement.

Here each such call runs on a thread of its own and the statement waits
`[backup] s3_deadline_seconds` for it, then answers UNAVAILABLE. The thread
cannot be stopped (pyarrow offers no way): it is abandoned, and ends when the
endpoint lets it. So that abandoned calls do not pile up, a target (endpoint
and bucket) has at most `SLOTS` calls running; a statement that finds them all
taken waits for one within its deadline, and answers UNAVAILABLE at once when
every one is an abandoned call (the target is not answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from catalog.errors import Unavailable
from storage.backup import stoppable

log = logging.getLogger("cairn.backup")
T = TypeVar("T")

SLOTS = 4  # calls running at once per target, abandoned ones included


@dataclass
class _Target:
    running: int = 0  # calls whose thread has not returned, abandoned ones too
    abandoned: int = 0
    freed: asyncio.Event = field(default_factory=asyncio.Event)


class TargetCalls:
    """The calls in flight to each target, for one server (one event loop)."""

    def __init__(self, deadline_seconds: float) -> None:
        self.deadline = deadline_seconds
        self._targets: dict[str, _Target] = {}

    def _refuse(self, shown: str, t: _Target) -> Unavailable:
        return Unavailable(
            f"backup target '{shown}' is not answering: {t.abandoned} earlier calls to it "
            f"are still waiting on it, each given up after {self.deadline:g} s "
            "([backup] s3_deadline_seconds)")

    async def call(self, key: str, shown: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a thread of its own, within the deadline (UNAVAILABLE after it)."""
        loop = asyncio.get_running_loop()
        t = self._targets.setdefault(key, _Target())
        end = loop.time() + self.deadline
        while t.running >= SLOTS:
            if t.abandoned >= SLOTS:
                raise self._refuse(shown, t)
            t.freed.clear()
            try:
                await asyncio.wait_for(t.freed.wait(), max(0.0, end - loop.time()))
            except TimeoutError:
                raise self._late(shown) from None
        t.running += 1
        done: asyncio.Future[T] = loop.create_future()
        gave_up = False

        def finish(value: Any, exc: BaseException | None) -> None:  # on the loop
            t.running -= 1
            if gave_up:
                t.abandoned -= 1
                stoppable.left(-1)
            t.freed.set()
            if not gave_up and not done.done():
                if exc is not None:
                    done.set_exception(exc)
                else:
                    done.set_result(value)

        def body() -> None:
            value, exc = None, None
            try:
                value = fn(*args)
            except BaseException as e:  # handed to the statement, if it still waits
                exc = e
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(finish, value, exc)

        threading.Thread(target=body, name="cairn-s3-call", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), max(0.0, end - loop.time()))
        except (TimeoutError, asyncio.CancelledError) as e:
            if not done.done():
                gave_up = True
                t.abandoned += 1
                stoppable.left(+1)
                log.warning("backup target %s: a call is still running after %g s; "
                            "abandoned (%d abandoned now)", shown, self.deadline, t.abandoned)
            if isinstance(e, asyncio.CancelledError):
                raise
            raise self._late(shown) from None

    def _late(self, shown: str) -> Unavailable:
        return Unavailable(f"backup target '{shown}' did not answer within {self.deadline:g} s "
                           "([backup] s3_deadline_seconds)")
