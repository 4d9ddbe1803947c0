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
  counted), so a Parse or Bind past it is refused (54000) until some are
  closed;
- a portal whose rows have all been sent forgets them;
- at most MAX_PENDING_ANSWERS portals hold rows not sent yet (run by Describe
  or suspended by an Execute with a row limit); running one more is refused
  (54000) until one is read to its end or closed."""

from __future__ import annotations

from collections import UserDict
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import PgError

TEXT_BUDGET_REQUESTS = 4
OVERHEAD = 200  # bytes counted per statement or portal besides its name and text
MAX_PENDING_ANSWERS = 4
OID_BYTES = 32  # a parameter type kept: a list slot and an int
SPOT_BYTES = 160  # a `$n` place kept: a list slot and a tuple of three ints

V = TypeVar("V")


class Kept(UserDict[str, V], Generic[V]):
    """Named statements or portals, with the bytes their names and texts hold
    (kept up to date on every store and removal, shared by both kinds);
    `size_of`: the bytes one holds besides its name."""

    def __init__(self, tally: Tally, size_of: Callable[[V], int]) -> None:
        self.tally = tally
        self.size_of = size_of
        super().__init__()

    def _size(self, name: str, value: V) -> int:
        return OVERHEAD + len(name) + self.size_of(value)

    def __setitem__(self, name: str, value: V) -> None:
        old = self._size(name, self.data[name]) if name in self.data else 0
        self.tally.take(self._size(name, value) - old)
        self.data[name] = value

    def __delitem__(self, name: str) -> None:
        value = self.data.pop(name)
        self.tally.used -= self._size(name, value)

    def clear(self) -> None:
        for name, value in self.data.items():
            self.tally.used -= self._size(name, value)
        self.data.clear()


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
    """The bytes of text one connection keeps, against its budget."""

    def __init__(self, max_request_bytes: int) -> None:
        self.budget = TEXT_BUDGET_REQUESTS * max_request_bytes
        self.used = 0

    def take(self, more: int) -> None:
        if more > 0 and self.used + more > self.budget:
            raise PgError(
                "54000", f"this connection's prepared statements and portals would hold "
                         f"{self.used + more} bytes of text and parameter types, past its "
                         f"limit of {self.budget} "
                         f"({TEXT_BUDGET_REQUESTS} × [server] max_request_bytes): close some "
                         f"(Close, DEALLOCATE) or end the transaction")
        self.used += more


def refuse_another_pending(pending: int) -> None:
    """54000 when MAX_PENDING_ANSWERS portals already hold unsent rows."""
    if pending >= MAX_PENDING_ANSWERS:
        raise PgError(
            "54000", f"{pending} portals of this connection already hold rows not yet sent "
                     f"(at most {MAX_PENDING_ANSWERS}): read one to its end, close it, or end "
                     f"the transaction")
