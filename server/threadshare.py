"""Role users' shares of the statement threads (`[server] blocking_threads`).

Until 2026-12-06 every request took the next free thread of one pool: one role
user's ten slow queries, each inside `query_timeout_seconds`, held all eight,
and everything else that needed a thread (GET /metrics, an admin's SELECT 1,
the console's polls) waited for them to time out (22-56 s; Prometheus' scrape
failed). Now the blocking work of a role user's requests (token mode, `role =
"user"`: budget.holder) holds at most a share of the threads, 1/SHARE of them
(never less than 1), and role users together leave one share free: what the
server itself must answer, and admins' statements, always find a thread that
no role user can take. A role user's further work waits on the event loop for
one of its own places (no thread is held meanwhile), first come first served,
never taking another's; a statement waits at most until its query timeout has
passed since it started (409 CANCELLED then), and a query that waited runs
only for what is left of it. Work outside a statement (a body's decoding, an
answer's encoding once its statements ran) waits as long as it must.
Admins, callers in `auth.mode = "none"` and the server's own work (jobs,
schedules, archiving) take any thread, as before.

Whose work it is follows the request: HTTP's /api/sql handler and a pgwire
connection set `HOLDER` for a role user (`held_by`), the executor (and pgwire's
catalog queries) narrow it to a statement's deadline (`statement`); a job
started from a statement clears it (its work is the server's)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from catalog.errors import Cancelled

from .budget import SHARE, holder
from .session import Interrupt, Session

T = TypeVar("T")


@dataclass(frozen=True)
class Holder:
    """A role user's session, and the monotonic time its running statement's
    query timeout ends (None: no statement runs, or it has no timeout)."""

    session: Session
    deadline: float | None = None
    # The statement's cancel (pgwire's CancelRequest), which ends its wait at once
    interrupt: Interrupt | None = None


HOLDER: contextvars.ContextVar[Holder | None] = contextvars.ContextVar("cairn_holder",
                                                                       default=None)


@contextlib.contextmanager
def held_by(session: Session | None) -> Iterator[None]:
    """The block's blocking work is `session`'s (counted if a role user's;
    None: the server's own work, as a job's)."""
    token = HOLDER.set(Holder(session) if session is not None and holder(session) else None)
    try:
        yield
    finally:
        HOLDER.reset(token)


@contextlib.contextmanager
def statement(session: Session, server_timeout: float | None) -> Iterator[None]:
    """One statement of a role user's: its waits for a thread, and its queries,
    end with its query timeout counted from now."""
    if holder(session) is None:
        yield
        return
    seconds = session.query_timeout(server_timeout)
    token = HOLDER.set(Holder(session, time.monotonic() + seconds if seconds else None,
                              session.interrupt))
    try:
        yield
    finally:
        HOLDER.reset(token)


class Threads:
    """Places in the pool taken by role users: at most `share` each and
    `users` together; waiters queue in order."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.share = max(1, threads // SHARE)
        self.users = max(1, threads - self.share)  # one share is kept back
        self.held = 0
        self.by: Counter[str] = Counter()
        self._queue: deque[tuple[str, asyncio.Future[None]]] = deque()
        self.timeouts = 0  # statements refused: their timeout passed as they waited

    def _fits(self, who: str) -> bool:
        return self.held < self.users and self.by[who] < self.share

    def _count(self, who: str, n: int) -> None:
        self.held += n
        self.by[who] += n
        if self.by[who] <= 0:
            del self.by[who]

    def give(self, who: str) -> None:
        """A place of `who`'s is free: the first waiters that now fit take it."""
        self._count(who, -1)
        for entry in list(self._queue):
            if self.held >= self.users:
                break
            if self._fits(entry[0]):
                self._queue.remove(entry)
                self._count(entry[0], 1)
                entry[1].set_result(None)

    async def take(self, who: str, deadline: float | None, seconds: float | None,
                   interrupt: Interrupt | None = None) -> None:
        """A place for `who`, waited for until `deadline` (CANCELLED past it) or
        until `interrupt` fires (CANCELLED: a CancelRequest of the statement;
        it was abandoned only CANCEL_GRACE, 2 s, later, still in the queue)."""
        if self._fits(who):  # no waiter fits (`give` let them in): none is passed
            self._count(who, 1)
            return
        loop = asyncio.get_running_loop()
        entry = (who, loop.create_future())
        stop: asyncio.Future[None] = loop.create_future()

        def stopped() -> None:
            if not stop.done():
                stop.set_result(None)

        if interrupt is not None:  # fired already: Cancelled, never queued
            # Called by the cancel (on the loop) and again by its re-fire (another thread).
            interrupt.target(lambda: loop.call_soon_threadsafe(stopped))
        self._queue.append(entry)
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait({entry[1], stop}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._leave(entry)
            raise
        finally:
            if interrupt is not None:
                interrupt.target(None)
        if not entry[1].done():
            self._leave(entry)
            if stop.done():
                raise Cancelled("query cancelled at the client's request")
            self.timeouts += 1
            raise Cancelled(self._refusal(who, seconds))

    def metrics(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """For /metrics (metrics.StateCollector): the waits now, the refusals so far."""
        waiting = GaugeMetricFamily(
            "cairn_statement_thread_waiters", "Role users' statements (and other work of "
            "their requests) waiting now for a place in [server] blocking_threads")
        waiting.add_metric([], len(self._queue))
        yield waiting
        refused = CounterMetricFamily(
            "cairn_statement_thread_wait_timeouts", "Role users' statements refused "
            "(CANCELLED) because their query timeout passed as they waited for a thread")
        refused.add_metric([], self.timeouts)
        yield refused

    def _leave(self, entry: tuple[str, asyncio.Future[None]]) -> None:
        if entry[1].done():  # let in, but gone before it ran
            self.give(entry[0])
        else:
            self._queue.remove(entry)
            entry[1].cancel()

    def _refusal(self, who: str, seconds: float | None) -> str:
        why = (f"user {who!r} runs {self.by[who]} statements, its share of [server] "
               f"blocking_threads ({self.threads})" if self.by[who] >= self.share else
               f"role users run {self.held} statements, their part of [server] "
               f"blocking_threads ({self.threads})")
        return (f"statement cancelled: it waited its query timeout ({seconds:g} s) for a "
                f"statement thread, and none was free: {why}")

    async def run(self, pool: Executor, held: Holder, server_timeout: float | None,
                  call: Callable[[], T],
                  limit: Callable[[float, float], contextlib.AbstractContextManager[Any]]) -> T:
        """`call` on a thread of `pool`, once one of the holder's places is
        free; the place is given back when the thread is done with it (not when
        the caller stops waiting: a query past its timeout still runs until
        DuckDB stops it). `limit(deadline, seconds)` bounds its queries."""
        who = held.session.user_id or ""
        seconds = held.session.query_timeout(server_timeout)
        # Work outside a statement (a body, a pgwire Parse, an answer's
        # encoding after its statements ran) waits, never refused: a refusal
        # of the encoding answered 409 for an INSERT that had committed.
        await self.take(who, held.deadline, seconds, held.interrupt)
        loop = asyncio.get_running_loop()
        if held.deadline is not None and seconds:
            bound = held.deadline

            def work() -> T:
                with limit(bound, seconds):
                    return call()
        else:
            work = call
        try:
            fut: Future[T] = pool.submit(work)
        except BaseException:
            self.give(who)
            raise

        def done(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(self.give, who)

        fut.add_done_callback(done)
        return await asyncio.wrap_future(fut)
