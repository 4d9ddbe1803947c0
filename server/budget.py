"""Server-wide byte budgets: what all connections together may make the server hold.

Each connection's own bound (`max_request_bytes` for a body, four of them for
a pgwire connection's prepared statements and portals) left the total to the
number of connections: 60 HTTP bodies of 10 MB held half-sent added 684 MB,
30 idle pgwire connections of 4 × 9 MB statements 1 GB (1,000 and 200 such
connections: 11 and 7 GB). So the bytes of request bodies being received and
held (HTTP's, and pgwire messages being read) count against `[server]
max_inflight_request_bytes`, and the bytes connections keep in prepared
statements and portals against `[pgwire] max_prepared_bytes_total`. A request
that does not fit is refused at once (HTTP 503 with Retry-After, pgwire 53200)
rather than made to wait: a waiting request would hold its connection and
handler anyway, and a queue of them would need a bound of its own.

Any one role user (`role = "user"` in token mode) holds at most 1/SHARE of
a budget (but never less than its floor): until 2026-12-06 one role user's
26 half-sent bodies or silent connections made every other user's requests
503. Admins, and every caller in `auth.mode = "none"` (all admins there), are
held by the whole budget only."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

# A pgwire connection's prepared statements and portals keep at most this many
# × `[server] max_request_bytes` (pgwire/kept.py).
KEPT_REQUESTS = 4


SHARE = 4  # a role user holds at most a quarter of a budget
# Connections role users never take, on either listener (the admins' reserve).
ADMIN_RESERVED = 3


def shares(places: int) -> tuple[int, int]:
    """(one role user's at most, role users' together at most) of a
    listener's `places` connections: a quarter each, all but ADMIN_RESERVED
    together (at least 1 each)."""
    return max(1, places // SHARE), max(1, places - ADMIN_RESERVED)


def holder(session: Any) -> str | None:
    """Whose share a session's bytes count against: a role user's id, else None."""
    return session.user_id if session.role != "admin" else None


class OverBudget(Exception):
    """The bytes asked for do not fit what is left of the budget now (or of
    the caller's share of it, if `share`)."""

    def __init__(self, message: str, share: bool = False) -> None:
        super().__init__(message)
        self.share = share


class Budget:
    """Bytes held across connections, at most `limit` (never below `floor`, so
    one request of the largest size a connection may send always fits), and
    at most `share` by any one role user."""

    def __init__(self, limit: int, floor: int = 0) -> None:
        self.limit = max(limit, floor)
        self.share = max(self.limit // SHARE, floor)
        self.used = 0
        self.by: Counter[str] = Counter()

    def take(self, n: int, who: str | None = None) -> None:
        """Count `n` more bytes held, for role user `who` (None: an admin);
        OverBudget (nothing counted) past the limit or past `who`'s share."""
        if n > 0 and self.used + n > self.limit:
            raise OverBudget(f"{self.used} of {self.limit} bytes are held, {n} more do not fit")
        if n > 0 and who is not None and self.by[who] + n > self.share:
            raise OverBudget(f"user {who!r} holds {self.by[who]} bytes of its share of "
                             f"{self.share}, {n} more do not fit", share=True)
        self.used += n
        if who is not None:
            self._count(who, n)

    def give(self, n: int, who: str | None = None) -> None:
        """`n` bytes counted by `take` (for the same `who`) are no longer held."""
        self.used -= n
        if who is not None:
            self._count(who, -n)

    def _count(self, who: str, n: int) -> None:
        left = self.by[who] + n
        if left > 0:
            self.by[who] = left
        else:
            self.by.pop(who, None)

    def held_by(self, who: str | None) -> int:
        return self.by[who] if who is not None else self.used

    def refusal(self, exc: OverBudget, who: str | None, n: int, what: str, this: str) -> str:
        """A refusal's start: who holds how many bytes of `what`, and what
        `n` more (`this` one's) would pass, the budget's name to follow."""
        if exc.share:
            return (f"user {who!r} is receiving or holding {self.held_by(who)} bytes of {what}; "
                    f"{this} {n} more would pass its share ({self.share}) of")
        return (f"the server is receiving or holding {self.used} bytes of {what}; {this} {n} "
                "more would pass")

    @contextlib.contextmanager
    def held(self, n: int, who: str | None = None) -> Iterator[None]:
        """`n` bytes counted while the block runs (OverBudget before it, if they do not fit)."""
        self.take(n, who)
        try:
            yield
        finally:
            self.give(n, who)
