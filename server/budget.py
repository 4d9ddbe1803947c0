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
handler anyway, and a queue of them would need a bound of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# A pgwire connection's prepared statements and portals keep at most this many
# × `[server] max_request_bytes` (pgwire/kept.py).
KEPT_REQUESTS = 4


class OverBudget(Exception):
    """The bytes asked for do not fit what is left of the budget now."""


class Budget:
    """Bytes held across connections, at most `limit` (never below `floor`, so
    one request of the largest size a connection may send always fits)."""

    def __init__(self, limit: int, floor: int = 0) -> None:
        self.limit = max(limit, floor)
        self.used = 0

    def take(self, n: int) -> None:
        """Count `n` more bytes held; OverBudget (nothing counted) past the limit."""
        if n > 0 and self.used + n > self.limit:
            raise OverBudget(f"{self.used} of {self.limit} bytes are held, {n} more do not fit")
        self.used += n

    def give(self, n: int) -> None:
        """`n` bytes counted by `take` are no longer held."""
        self.used -= n

    @contextlib.contextmanager
    def held(self, n: int) -> Iterator[None]:
        """`n` bytes counted while the block runs (OverBudget before it, if they do not fit)."""
        self.take(n)
        try:
            yield
        finally:
            self.give(n)
