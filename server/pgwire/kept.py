"""What one connection keeps between messages, and its bounds.

A prepared statement keeps its text, a portal its text with the parameters
written in and, once run, its whole answer (up to `max_result_rows` /
`max_result_bytes`). Nothing bounded how many of them a client could keep:
30 Parse messages of 9 MB added 270 MB to the server, 20 portals of one
100,000-row query held in a transaction added 1.1 GB; any user could do it.
Now, as PostgreSQL does, every portal goes when the transaction ends (a Sync
outside BEGIN … COMMIT), and besides:

- the texts of a connection's prepared statements and portals together hold
  at most TEXT_BUDGET_REQUESTS × `[server] max_request_bytes` (40 MiB by
  default; each name and statement counted with OVERHEAD bytes more, and a
  statement's parameter types and `$n` places with what Python holds for
  them: 65,535 declared types kept 2 MB where only name and text were
  counted; the columns a Describe found and a portal's answer has, and a
  Bind's result format codes, too), so a Parse, Bind or Describe past it is
  refused (54000) until some are closed;
- a portal whose rows have all been sent forgets them;
- at most MAX_PENDING_ANSWERS portals hold rows not sent yet (run by Describe
  or suspended by an Execute with a row limit); running one more is refused
  (54000) until one is read to its end or closed;
- the rows those portals hold count by their bytes (`rows_size`) against
  `[pgwire] max_portal_rows_bytes_total`, all connections together, and a
  quarter of it for one connection and for one role user (`Rows`): 8
  connections of one user, each with 4 portals suspended after one row of a
  60 MB answer, held 2.2 GB for as long as they idled. Past it the Execute
  that would keep rows is refused (54000 for the connection's quarter, 53200
  for the server's total or the user's share) and its portal closed; a
  Describe's rows are forgotten instead, and its Execute runs the statement
  again (as PostgreSQL's always does). Rows given back past PURGE_BYTES ask
  the allocators to return the freed memory (storage/allocator.py)."""

from __future__ import annotations

import sys
from collections import UserDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from storage import allocator

from ..budget import KEPT_REQUESTS, SHARE, Budget, OverBudget, holder
from ..session import Session
from .errors import PgError

TEXT_BUDGET_REQUESTS = KEPT_REQUESTS
OVERHEAD = 200  # bytes counted per statement or portal besides its name and text
MAX_PENDING_ANSWERS = 4
OID_BYTES = 32  # a parameter type kept: a list slot and an int
SPOT_BYTES = 160  # a `$n` place kept: a list slot and a tuple of three ints
FORMAT_BYTES = 8  # a result format code kept: a list slot (0 and 1 are shared ints)
COLUMN_BYTES = 150  # a column described, besides its name: a list slot, a tuple, a str, an int
# A kept row counts its Arrow bytes (as [server] max_result_bytes) and what
# Python holds besides: a list per row, and per value a slot and an object's
# header (over their Arrow bytes a float holds 24 bytes more, an int 28, a
# date 36, a timestamp 48, a short text 53, a short non-ASCII one 83, a decimal 96).
ROW_BYTES = 56
VALUE_BYTES = 48
SAMPLE_ROWS = 1000  # rows measured of an answer the engine did not give as Arrow
PURGE_BYTES = 16 * 1024 * 1024  # rows given back before the allocators are asked to return memory

V = TypeVar("V")


def columns_size(columns: list[tuple[str, int]] | None) -> int:
    """The bytes a statement's or portal's described columns hold."""
    return sum(COLUMN_BYTES + len(name) for name, _ in columns or ())


class Kept(UserDict[str, V], Generic[V]):
    """Named statements or portals, with the bytes their names and texts hold
    (kept up to date on every store and removal, shared by both kinds);
    `size_of`: the bytes one holds besides its name. What each was counted
    at is kept, so one changed in place (`recount`) is freed as counted."""

    def __init__(self, tally: Tally, size_of: Callable[[V], int]) -> None:
        self.tally = tally
        self.size_of = size_of
        self.sizes: dict[str, int] = {}
        super().__init__()

    def _size(self, name: str, value: V) -> int:
        return OVERHEAD + len(name) + self.size_of(value)

    def __setitem__(self, name: str, value: V) -> None:
        size = self._size(name, value)
        self.tally.take(size - self.sizes.get(name, 0))
        self.data[name] = value
        self.sizes[name] = size

    def __delitem__(self, name: str) -> None:
        del self.data[name]
        self.tally.give(self.sizes.pop(name))

    def clear(self) -> None:
        self.tally.give(sum(self.sizes.values()))
        self.sizes.clear()
        self.data.clear()

    def recount(self, name: str, undo: Callable[[], object]) -> None:
        """The one named has grown in place (a statement described, a portal
        run: their columns): counted anew. Past the budget `undo()` puts it
        back (or closes it) and it is 54000."""
        if name not in self.data:
            return
        size = self._size(name, self.data[name])
        try:
            self.tally.take(size - self.sizes[name])
        except PgError:
            undo()
            raise
        self.sizes[name] = size


def rows_size(reply: Any) -> int:
    """The bytes a reply's rows hold, as kept portals count them: the Arrow
    bytes of the engine's or a catalog query's answer and Python's per row
    and value (above), or for an answer not from Arrow (SHOW, system
    statements: none a user shapes) what Python holds for SAMPLE_ROWS of its
    rows, evenly spread, scaled to all."""
    rows, width = reply.rows, len(reply.columns or ())
    if reply.nbytes is not None:
        return int(reply.nbytes) + len(rows) * (ROW_BYTES + width * VALUE_BYTES)
    sample = rows[::max(1, len(rows) // SAMPLE_ROWS)]
    size = sum(sys.getsizeof(row) + sum(map(sys.getsizeof, row)) for row in sample)
    return size * len(rows) // max(1, len(sample))


class Portals(Kept[V]):
    """Portals, and which of them hold rows not yet sent (`pending`; `held`:
    the bytes of those counted against `rows`): a portal replaced, closed or
    cleared is pending no more."""

    def __init__(self, tally: Tally, size_of: Callable[[V], int], rows: Rows | None = None,
                 gone: Callable[[V], object] = lambda _: None) -> None:
        self.pending: set[str] = set()
        self.held: dict[str, int] = {}
        self.rows = rows
        self.gone = gone  # told of a portal replaced or gone: its answer's bytes go back
        super().__init__(tally, size_of)

    def __setitem__(self, name: str, value: V) -> None:
        self.sent(name)
        old = self.data.get(name)
        super().__setitem__(name, value)
        if old is not None and old is not value:
            self.gone(old)

    def __delitem__(self, name: str) -> None:
        self.sent(name)
        old = self.data[name]
        super().__delitem__(name)
        self.gone(old)

    def clear(self) -> None:
        for name in list(self.held):
            self.sent(name)
        self.pending.clear()
        old = list(self.data.values())
        super().clear()
        for portal in old:
            self.gone(portal)

    def keep(self, name: str, portal: Any, limit: int) -> Any:
        """Portal `name` has just run, for a Describe (`limit` -1) or an
        Execute (its row limit, 0 for all): rows its answer will keep unsent
        are counted and it is pending. Its answer is returned. Past the
        bounds a Describe's rows are forgotten (`portal.reply` None: its
        Execute runs it again); an Execute's is 54000 / 53200, the portal closed."""
        reply = portal.reply
        count = len(reply.rows)
        if not count or limit == 0 or 0 < count <= limit:  # all sent at once: nothing kept
            return reply
        if self.rows is not None:
            size = rows_size(reply)
            try:
                self.rows.take(size)
            except PgError:
                self.rows.dropped(size)  # not kept: freed once this message is done
                if limit > 0:
                    self.pop(name, None)
                    raise
                self.gone(portal)  # its answer's bytes go back to the answers budget too
                portal.reply = None
                return reply
            self.held[name] = size
        self.pending.add(name)
        return reply

    def sent(self, name: str) -> None:
        """Portal `name` holds no unsent rows any more (read to its end, gone)."""
        self.pending.discard(name)
        size = self.held.pop(name, None)
        if size is not None and self.rows is not None:
            self.rows.give(size)

    def synced(self, tx: bytes) -> None:
        """After a Sync, as PostgreSQL: outside BEGIN … COMMIT (`tx` b"I")
        the implicit transaction ends and every portal with it; inside, the
        unnamed portal goes."""
        if tx == b"I":
            self.clear()
        else:
            self.pop("", None)


class Tally:
    """The bytes of text one connection keeps, against its budget and the
    server's (`[pgwire] max_prepared_bytes_total`, all connections together:
    200 connections of 40 MiB each were 8 GB)."""

    def __init__(self, max_request_bytes: int, shared: Budget | None = None,
                 session: Session | None = None) -> None:
        self.budget = TEXT_BUDGET_REQUESTS * max_request_bytes
        self.shared = shared
        # The role user whose share of `shared` (and of the server's inflight
        # budget, for the connection's messages) counts these bytes too.
        self.who = holder(session) if session is not None else None
        self.used = 0

    def take(self, more: int) -> None:
        if more > 0 and self.used + more > self.budget:
            raise PgError(
                "54000", f"this connection's prepared statements and portals would hold "
                         f"{self.used + more} bytes of text, parameter types and columns, past its "
                         f"limit of {self.budget} "
                         f"({TEXT_BUDGET_REQUESTS} × [server] max_request_bytes): close some "
                         f"(Close, DEALLOCATE) or end the transaction")
        if self.shared is not None:
            try:
                self.shared.take(more, self.who)
            except OverBudget as exc:
                mine = self.shared.held_by(self.who)
                kept = (f"the connections of user {self.who!r} keep {mine} bytes of prepared "
                        f"statements and portals; {more} more would pass its "
                        f"share ({self.shared.share}) of" if exc.share else
                        f"the server's connections keep {self.shared.used} bytes of prepared "
                        f"statements and portals together; {more} more would pass")
                raise PgError(
                    "53200", f"{kept} [pgwire] max_prepared_bytes_total ({self.shared.limit}): "
                             "try again later, or close some (Close, DEALLOCATE)") from None
        self.used += more

    def give(self, less: int) -> None:
        """`less` bytes are kept no more (a statement or portal closed)."""
        self.used -= less
        if self.shared is not None:
            self.shared.give(less, self.who)

    def release(self) -> None:
        """The connection ends: what it kept is the server's again."""
        if self.shared is not None:
            self.shared.give(self.used, self.who)
        self.used = 0


class RowsBudget(Budget):
    """`[pgwire] max_portal_rows_bytes_total`: the bytes of rows all
    connections' portals keep unsent; one connection, and one role user's
    connections together, at most a quarter. `purge`: whether rows given
    back ask the allocators to return memory ([storage] duckdb_release_memory)."""

    def __init__(self, limit: int, purge: bool = True) -> None:
        super().__init__(limit)
        self.purge = purge


class Rows:
    """The bytes of rows one connection's portals keep unsent, against its
    quarter of `shared` and `shared` itself (a role user `who`'s share)."""

    def __init__(self, shared: RowsBudget, who: str | None) -> None:
        self.shared, self.who = shared, who
        self.used = 0
        # once the current message is done (the rows' last references, an
        # Execute's locals, are gone by then)
        self.released = allocator.PurgeAfter(PURGE_BYTES, 0.0, shared.purge)

    def take(self, more: int) -> None:
        limit, name = self.shared.limit, "[pgwire] max_portal_rows_bytes_total"
        if self.used + more > limit // SHARE:
            raise PgError(
                "54000", f"this connection's portals would keep {self.used + more} bytes of rows "
                         f"not yet sent, past its limit of {limit // SHARE} (a quarter of {name}, "
                         f"{limit}): read them to their end, close some (Close) or end the "
                         "transaction; an Execute without a row limit keeps none")
        try:
            self.shared.take(more, self.who)
        except OverBudget as exc:
            kept = (f"the connections of user {self.who!r} keep "
                    f"{self.shared.held_by(self.who)} bytes of rows in portals, not yet sent; "
                    f"this portal's {more} more would pass its share ({self.shared.share}) of"
                    if exc.share else
                    f"the server's connections keep {self.shared.used} bytes of rows in portals, "
                    f"not yet sent; this portal's {more} more would pass")
            raise PgError("53200", f"{kept} {name} ({limit}): try again later, read them to "
                                   "their end or close some (Close), or Execute without a "
                                   "row limit") from None
        self.used += more

    def give(self, less: int) -> None:
        """`less` bytes of rows are kept no more."""
        self.used -= less
        self.shared.give(less, self.who)
        self.dropped(less)

    def dropped(self, size: int) -> None:
        """`size` bytes of rows are let go (given back, or refused); past
        PURGE_BYTES let go, the allocators return what is free."""
        self.released.let_go(size)


def refuse_another_pending(pending: int) -> None:
    """54000 when MAX_PENDING_ANSWERS portals already hold unsent rows."""
    if pending >= MAX_PENDING_ANSWERS:
        raise PgError(
            "54000", f"{pending} portals of this connection already hold rows not yet sent "
                     f"(at most {MAX_PENDING_ANSWERS}): read one to its end, close it, or end "
                     f"the transaction")
