"""Who runs a statement, and where (its own module so the job runner, which
records who started a job, need not import the server's state)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from catalog.errors import Cancelled
from storage import stopping
from storage.limits import AnswerBudget
from storage.watchdog import REFIRE, Alarm, Watchdog

T = TypeVar("T")


class Interrupt:
    """Lets another task stop the DuckDB query a statement is running (a
    PostgreSQL CancelRequest). Fired before the query starts, the query is
    not started; fired as it starts, it is interrupted again every
    watchdog.REFIRE seconds until it is done (DuckDB drops an interrupt that
    comes before its query runs: a cancel that came as the statement's query
    was being started was lost, and the query held its thread to its timeout)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Callable[[], Any] | None = None
        self._again: Alarm | None = None  # the interrupt sent again, until the query is done
        self.fired = False
        self.committed = False  # its write passed the point of no return: not cancelled

    def target(self, fn: Callable[[], Any] | None) -> None:
        """The engine hands over the running cursor's interrupt (None: done);
        CANCELLED if already fired: the query is not started (DuckDB drops an
        interrupt that comes before the query runs: a statement cancelled
        while it waited for its thread ran on past its cancel)."""
        with self._lock:
            if fn is not None and self.fired:
                raise Cancelled("query cancelled at the client's request")
            self._target = fn
            again, self._again = (self._again, None) if fn is None else (None, self._again)
        if again is not None:  # once disarmed, it never interrupts the cursor's next query
            _REFIRE.disarm(again)

    def commit(self) -> bool:
        """Asked by a write just before it commits (storage/stopping.py):
        False if already cancelled; else the statement is past cancelling."""
        with self._lock:
            if self.fired:
                return False
            self.committed = True
            return True

    def fire(self) -> bool:
        """Stop the statement; False if its write has already committed."""
        with self._lock:
            if self.committed:
                return False
            self.fired = True
            if self._target is None:
                return True
            self._target()
        # Outside the lock: the watchdog's thread calls `_send` holding its own.
        again: Alarm | None = _REFIRE.arm(REFIRE, self._send)
        with self._lock:
            if self._target is not None and self._again is None:
                self._again, again = again, None
        if again is not None:  # the query ended meanwhile (or a cancel came twice)
            _REFIRE.disarm(again)
        return True

    def _send(self) -> None:
        target = self._target  # None once the query is done (then the alarm is disarmed)
        if target is not None:
            target()


_REFIRE = Watchdog()  # sends a fired Interrupt's again (its own thread, started at its first)


@dataclass
class Session:
    """Who runs a statement and where: the caller's identity and role, the
    request's default namespace, and the statement's own SQL text."""

    user_id: str | None
    role: str = "admin"
    namespace: str | None = None
    text: str = ""
    # Told the id of every job a statement of this session starts (pgwire
    # turns it into progress notices and cancels it on a CancelRequest).
    on_job: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    interrupt: Interrupt | None = field(default=None, repr=False, compare=False)
    # A pgwire session's statement_timeout (seconds; None: none), beside the
    # server's [server] query_timeout_seconds: the smaller bounds a query.
    timeout: float | None = None
    # Whether the client has gone (an HTTP client hung up): the request's
    # statements after the running one are then not run.
    gone: Callable[[], bool] | None = field(default=None, repr=False, compare=False)
    # What the answers of the request so far left of its bounds (executor.py);
    # None: the server's bounds of one answer.
    answers: AnswerBudget | None = field(default=None, repr=False, compare=False)
    # The request's answers held against the server's budget (answers.Held;
    # executor.py): a query's rows count from when they are read.
    held: Any = field(default=None, repr=False, compare=False)

    def query_timeout(self, server_seconds: float | None) -> float | None:
        """The bound of this session's queries: the server's and its own, the smaller."""
        bounds = [t for t in (server_seconds, self.timeout) if t]
        return min(bounds) if bounds else None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def stoppable(self, fn: Callable[..., T]) -> Callable[..., T]:
        """`fn`, run on a statement thread so that a cancel of this statement
        (`interrupt`) reaches it: a DDL cancelled while it waits for a lock
        writes nothing when it gets it (storage/stopping.py `commit_point`)."""
        interrupt = self.interrupt
        if interrupt is None:
            return fn

        def run(*args: Any, **kwargs: Any) -> T:
            with stopping.stoppable(interrupt):
                return fn(*args, **kwargs)

        return run

    def with_text(self, text: str) -> Session:
        """A copy for one statement of a request (as `copy.copy`, ~10× faster)."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.text = text
        return out
