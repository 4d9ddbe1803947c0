"""A statement that made DuckDB fail internally is not run again, and a role
user whose statements keep doing it is held off for a while.

Such a statement costs everyone: DuckDB invalidates its whole database, the
engine replaces it (storage/duckrestart.py, tens of ms), and every query
running on the old one beside it is a 503. Repeated in a loop by one role
user, everyone else's statements failed. So:

- the quarantine: the statement's fingerprint is remembered (an LRU of
  `[server] duckdb_fault_quarantine` entries, each for
  `duckdb_fault_quarantine_seconds`), and the same statement is refused at
  once, 400 INVALID_ARGUMENT, without running (the oldest is forgotten
  first: entries end in the order they were made). The fingerprint
  (server/fingerprint.py) is the statement's text as the user wrote it,
  read as DuckDB's lexer reads it, its string and number literals as `?`,
  comments dropped, in lower case, spaces squeezed, with the request's
  namespace and the user: a fault quarantines that user's statement, not
  another's (who could otherwise have anyone's query refused by crafting a
  fault of the same shape; each user's own faults are bounded by the
  brake). Not the SQL DuckDB was given: that names a
  query's Arrow tables by random names and its files as they are now, so it
  changes with every run and every flush. Literals out: a client that puts a
  counter or a date in the same statement is the same statement (DuckDB's
  known faults come from the statement's shape and NULLs, and NULL is a
  word, kept). The memory of it ends, so that a statement that failed on
  data since changed may run again.
- the brake: a role user whose statements made DuckDB fail
  `duckdb_faults_per_user` times within `duckdb_fault_window_seconds` has
  their further queries (SELECT, INSERT, UPDATE, DELETE, EXPLAIN [ANALYZE])
  refused, 503 UNAVAILABLE with Retry-After, until the oldest of those
  faults is out of the window; other users are not touched. A statement
  changed a little each time passes the quarantine; this bounds it. Admins
  are not braked (an admin can stop the server anyway; braking the one
  identity of `auth.mode = "none"` would lock the operator out).

Only a statement that itself made DuckDB fail counts (a DuckFault), not one
that met a DuckDB another broke. Everything here runs on the event loop."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from catalog.errors import InvalidArgument, Unavailable
from sqlgrammar import ast

from .fingerprint import fingerprint
from .session import Session

log = logging.getLogger("cairn.server")

# Since the process started: statements refused as quarantined ("quarantined")
# or as their user's ("braked"), and users braked ("brakes"): GET /metrics
# shows them as cairn_duckdb_fault_refusals_total and cairn_duckdb_fault_brakes_total.
COUNTS: collections.Counter[str] = collections.Counter()


class Braked(Unavailable):
    """A braked user's query: 503, with when to try again (Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def runs_duckdb(stmt: ast.Statement) -> bool:
    """Whether `stmt` may run a query on DuckDB (a fast-path INSERT or point
    SELECT cannot fail it: plain columns and literals)."""
    if isinstance(stmt, ast.Explain):  # a plain one too: DuckDB folds constants to plan
        return stmt.analyze or runs_duckdb(stmt.query)
    return isinstance(stmt, ast.Query) and stmt.fast is None


class DuckFaults:
    """The quarantine and the brake of one server."""

    def __init__(self, server: Any) -> None:
        self.size = server.duckdb_fault_quarantine
        self.keep = server.duckdb_fault_quarantine_seconds
        self.per_user = server.duckdb_faults_per_user
        self.window = server.duckdb_fault_window_seconds
        self._lock = threading.Lock()
        self._quarantine: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._faults: dict[str, collections.deque[float]] = {}

    def holds(self) -> bool:
        """Whether anything is quarantined or counted (else nothing is checked)."""
        return bool(self._quarantine or self._faults)

    def active(self, stmt: ast.Statement) -> bool:
        """Whether `stmt` is to be checked: nothing is while nothing has failed."""
        return self.holds() and runs_duckdb(stmt)

    async def check(self, run: Callable[..., Awaitable[None]], session: Session,
                    stmt: ast.Statement) -> None:
        """`refuse`, for a long statement through `run` (a statement thread):
        its fingerprint takes ~1 ms per 1,500 characters."""
        if len(session.text) > LONG_TEXT:
            await run(self.refuse, session)
        else:
            self.refuse(session)

    def refuse(self, session: Session) -> None:
        """Refuse the statement if its user is braked (Unavailable) or it is in
        quarantine (InvalidArgument)."""
        now = time.monotonic()
        with self._lock:
            while self._quarantine and next(iter(self._quarantine.values())) <= now:
                self._quarantine.popitem(last=False)  # in the order they end
            wait = self._braked(session, now)
            if wait is None and self._quarantine:
                key = fingerprint(session.text, session.namespace, session.user_id)
                if key in self._quarantine:
                    COUNTS["quarantined"] += 1
                    raise InvalidArgument(QUARANTINED)
        if wait is not None:
            COUNTS["braked"] += 1
            raise Braked(
                f"queries of user '{session.user_id}' are refused for {wait} s more: "
                f"{self.per_user} of their statements made the query engine (DuckDB) fail "
                f"internally within {self.window:g} s, which made every user's running "
                f"queries fail", wait)

    def _braked(self, session: Session, now: float) -> int | None:
        """Seconds until the user's oldest counted fault leaves the window, if
        they have `per_user` in it (the lock is held)."""
        if session.is_admin or not self.per_user:
            return None
        times = self._faults.get(session.user_id or "")
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._faults[session.user_id or ""]
            return None
        if len(times) < self.per_user:
            return None
        return max(1, int(times[0] + self.window - now + 0.999))

    def record(self, session: Session, stmt: ast.Statement | None) -> None:
        """`stmt` made DuckDB fail internally: quarantine it, count it to its user."""
        now = time.monotonic()
        with self._lock:
            if self.size and self.keep:
                key = fingerprint(session.text, session.namespace, session.user_id)
                self._quarantine[key] = now + self.keep
                self._quarantine.move_to_end(key)
                while len(self._quarantine) > self.size:
                    self._quarantine.popitem(last=False)
            if session.is_admin or not self.per_user or not self.window:
                return
            user = session.user_id or ""
            times = self._faults.setdefault(user, collections.deque(maxlen=self.per_user))
            times.append(now)
            if len(self._faults) > MAX_USERS:  # each user's last faults, not without end
                self._faults.pop(next(iter(self._faults)))
            braked = len(times) >= self.per_user and times[0] > now - self.window
        if braked:
            COUNTS["brakes"] += 1
            log.warning("user '%s': %d statements made DuckDB fail internally within %g s; "
                        "their queries are refused (503) until the first of them is %g s old",
                        user, self.per_user, self.window, self.window)


MAX_USERS = 100_000
LONG_TEXT = 4096  # characters: a statement longer is checked on a statement thread

QUARANTINED = ("this statement made the query engine (DuckDB) fail internally before, which "
               "restarted it for every user: it is not run again (for up to "
               "[server] duckdb_fault_quarantine_seconds). Write it another way")
