"""What a CancelRequest does to a pgwire connection (connection.py), and the
statement it stops: a statement is run through `_stoppable`, its jobs are
recorded as they start, and `cancel()` stops them or interrupts the statement.

Busy, no statement starts after a cancel up to ReadyForQuery (57014); the
running one is answered as it ended."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from catalog.errors import CairnError

from ..session import Interrupt, Session
from ..state import Cairn
from . import messages
from .errors import PgError
from .results import progress_notices

CANCEL_GRACE = 2.0  # seconds a cancelled statement gets to stop before it is abandoned


class Cancellable:
    """The cancel half of `Connection` (its state is set there)."""

    cairn: Cairn
    session: Session
    writer: asyncio.StreamWriter
    busy: bool
    cancelled: bool
    waiting: bool
    jobs: set[str]
    stopped: set[str]  # jobs a cancel stopped before they began
    running: asyncio.Future[Any] | None

    async def _drain(self) -> None:
        raise NotImplementedError  # Connection's

    def _check_cancelled(self) -> None:
        if self.cancelled:
            raise PgError("57014", "canceling statement due to user request")

    def cancel(self) -> None:
        """A CancelRequest named this connection. Busy, no statement starts after it up to
        ReadyForQuery (57014); the running one is answered as it ended: 57014 if stopped, else
        its own answer (57014 for a write or BACKUP that had ended was retried: it ran twice).
        Idle or awaiting the client's next message, nothing happens, as in PostgreSQL."""
        if self.busy and not self.waiting:
            self.cancelled = True
        if self.running is None or self.running.done():
            return
        if self.jobs:
            for job_id in list(self.jobs):
                asyncio.ensure_future(self._kill(job_id))
            return
        # A DuckDB query stops at once, an uncommitted write never commits; a committed one is not.
        if self.session.interrupt is not None and not self.session.interrupt.fire():
            return
        running = self.running
        # Anything else (waiting on a lock) is abandoned shortly after, but not once it has jobs
        # (their end answers it); a DDL changes nothing when it gets the lock (commit_point).
        asyncio.get_running_loop().call_later(
            CANCEL_GRACE, lambda: None if running.done() or self.jobs else running.cancel())

    async def _kill(self, job_id: str) -> None:
        with contextlib.suppress(CairnError):  # it finished meanwhile
            await self.cairn.jobs.kill(job_id)

    async def _stoppable(self, work: Awaitable[Any]) -> Any:
        """`work`'s result, run as the statement a CancelRequest stops (cancel())."""
        self.jobs.clear()
        self.stopped.clear()
        self.session.interrupt = Interrupt()
        task = asyncio.ensure_future(work)
        self.running = task
        progress = asyncio.ensure_future(progress_notices(self.cairn, self.jobs, self.writer,
                                                          self._drain))
        try:
            await asyncio.wait({task})
        finally:
            progress.cancel()
            self.running = None
            self.jobs.clear()
        if task.cancelled() or self.stopped:  # a detached job stopped before it began too
            raise PgError("57014", "canceling statement due to user request")
        return task.result()

    def _job_started(self, job_id: str) -> None:
        self.jobs.add(job_id)
        self.writer.write(messages.notice(f"job {job_id} started"))
        if self.cancelled:  # the statement was cancelled before it started this job: the job
            self.cairn.jobs.ask_to_stop(job_id)  # does nothing, ends `cancelled`, answer 57014
            self.stopped.add(job_id)
