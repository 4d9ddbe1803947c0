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
  (54000) until one is read to its end or closed."""

from __future__ import annotations

from collections import UserDict
from collections.abc import Callable
from typing import Generic, TypeVar

from ..budget import KEPT_REQUESTS, Budget, OverBudget, holder
from ..session import Session
from .errors import PgError

TEXT_BUDGET_REQUESTS = KEPT_REQUESTS
OVERHEAD = 200  # bytes counted per statement or portal besides its name and text
MAX_PENDING_ANSWERS = 4
OID_BYTES = 32  # a parameter type kept: a list slot and an int
SPOT_BYTES = 160  # a `$n` place kept: a list slot and a tuple of three ints
FORMAT_BYTES = 8  # a result format code kept: a list slot (0 and 1 are shared ints)
COLUMN_BYTES = 150  # a column described, besides its name: a list slot, a tuple, a str, an int

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


class Portals(Kept[V]):
    """Portals, and which of them hold rows not yet sent (`pending`): a portal
    replaced, closed or cleared is pending no more."""

    def __init__(self, tally: Tally, size_of: Callable[[V], int]) -> None:
        self.pending: set[str] = set()
        super().__init__(tally, size_of)

    def __setitem__(self, name: str, value: V) -> None:
        self.pending.discard(name)
        super().__setitem__(name, value)

    def __delitem__(self, name: str) -> None:
        self.pending.discard(name)
        super().__delitem__(name)

    def clear(self) -> None:
        self.pending.clear()
        super().clear()

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


def refuse_another_pending(pending: int) -> None:
    """54000 when MAX_PENDING_ANSWERS portals already hold unsent rows."""
    if pending >= MAX_PENDING_ANSWERS:
        raise PgError(
            "54000", f"{pending} portals of this connection already hold rows not yet sent "
                     f"(at most {MAX_PENDING_ANSWERS}): read one to its end, close it, or end "
                     f"the transaction")
