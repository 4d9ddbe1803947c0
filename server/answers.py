"""Answers built and not yet sent, all connections together (`[server]
max_answer_bytes_total`, budget.py).

`max_result_bytes` bounds one request's answers, and `send_timeout_seconds`
how long a client may leave one unread, but nothing bounded how many answers
the server held at once: one role user's 24 pgwire connections each sending a
~60 MB SELECT and reading nothing grew the server by 1.9 GB (the same user may
open 200 of them, and 1,000 HTTP connections), and 1.2 GB of it stayed after
the sockets closed. Now a statement's answer counts from the moment its
result is made (at the size of its values, as `max_result_bytes` counts
them; an HTTP answer at its encoded body's size once that is built) until it
has been sent, its connection closes or its send times out. An answer that
does not fit is refused at once, as the other budgets refuse (HTTP 503
UNAVAILABLE with Retry-After: 1, pgwire 53200): waiting would hold it. Any one
role user holds at most a quarter of the budget; admins the whole of it.

What an answer held is given back to the operating system once let go
(`allocator.purge`, with `[storage] duckdb_release_memory`): its many small
Python objects were freed into malloc's arenas, and the process kept them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from catalog.errors import Unavailable
from storage import allocator

from .budget import Budget, OverBudget

PURGE_BYTES = 8 << 20  # answers let go of, since the last purge, that make one worth it
PURGE_DELAY = 0.2  # seconds after they are let go (their objects are freed by then)
SETTING = "[server] max_answer_bytes_total"


class AnswersBusy(Unavailable):
    """An answer that does not fit what is left of the answers' budget (or of
    its role user's share): 503 with Retry-After, SQLSTATE 53200."""

    retry_after = 1
    sqlstate = "53200"  # out_of_memory, as the other budgets over pgwire


class AnswerBytes(Budget):
    """The server's budget for answers held, and the purge after big ones go."""

    def __init__(self, limit: int, floor: int, purge: bool) -> None:
        super().__init__(limit, floor)
        self.refused = 0
        # Answers let go of (sent, dropped or refused): once enough were, their
        # memory is handed back to the operating system.
        self.released = allocator.PurgeAfter(PURGE_BYTES, PURGE_DELAY, purge)

    def give(self, n: int, who: str | None = None) -> None:
        super().give(n, who)
        self.let_go(n)

    def let_go(self, n: int) -> None:
        """`n` bytes of answers were let go of (sent, dropped or refused)."""
        self.released.let_go(n)

    def metrics(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        held = GaugeMetricFamily("cairn_answer_bytes_held", "Bytes of answers built and not "
                                 "yet sent, all connections together ([server] "
                                 "max_answer_bytes_total)")
        held.add_metric([], self.used)
        yield held
        refused = CounterMetricFamily("cairn_answer_refusals", "Statements whose answer was "
                                      "refused because it did not fit [server] "
                                      "max_answer_bytes_total (or its role user's share)")
        refused.add_metric([], self.refused)
        yield refused


class Held:
    """The bytes of answers one HTTP request (or one pgwire connection) holds
    against the server's budget, for role user `who` (None: an admin)."""

    def __init__(self, budget: AnswerBytes, who: str | None) -> None:
        self.budget, self.who = budget, who
        self.n = 0

    def take(self, n: int) -> None:
        """Count `n` more bytes; AnswersBusy (nothing counted) if they do not fit."""
        if n <= 0:
            return
        budget = self.budget
        try:
            budget.take(n, self.who)
        except OverBudget as exc:
            budget.refused += 1
            budget.let_go(n)  # the answer is dropped
            mine = budget.held_by(self.who) if exc.share else budget.used
            room = budget.share if exc.share else budget.limit
            held = (f"user {self.who!r} holds {mine} bytes of answers not yet sent; this "
                    f"answer's {n} more would pass its share ({budget.share}) of"
                    if exc.share else f"the server holds {mine} bytes of answers not yet sent; "
                    f"this answer's {n} more would pass")
            then = ("try again shortly" if n <= room else "an answer this large never fits: "
                    "narrow it with WHERE or LIMIT")
            raise AnswersBusy(f"{held} {SETTING} ({budget.limit}): {then}") from None
        self.n += n

    def give(self, n: int) -> None:
        """`n` of the bytes counted are held no more."""
        n = min(n, self.n)
        if n > 0:
            self.n -= n
            self.budget.give(n, self.who)

    def resize(self, n: int) -> None:
        """Count `n` bytes in all (an answer encoded: its body's size)."""
        if n > self.n:
            self.take(n - self.n)
        else:
            self.give(self.n - n)

    def release(self) -> None:
        self.give(self.n)

    def let_go(self, reply: Any) -> None:
        """A pgwire reply's rows are sent or dropped: what it counted for
        (its `held`) is given back, once."""
        if reply is not None and reply.held:
            self.give(reply.held)
            reply.held = 0


def answer_bytes(result: Any) -> int:
    """What a statement's result (server.result.Result) counts for: the size of
    its values' buffers (as `max_result_bytes` counts them), else of its rows'
    values as text (SHOW, DESCRIBE), as the executor's `_cut` counts them."""
    table = result.table
    if table is not None:
        return int(table.get_total_buffer_size()) if table.num_rows else 0
    return sum(len(str(v)) + 8 for row in result.rows for v in row.values())
