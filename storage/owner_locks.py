"""Whose writes to a table wait for whose (dml.py).

Until 2026-12-06 every writing statement held its table's `write_lock` from
before its row look-up to its commit: an UPDATE or DELETE whose WHERE ran
for the whole query timeout (a scalar subquery over a cross join) held up
every other writer of the table for as long, even on a USER table, where
each user writes only their own rows (a role user's one-row INSERT into his
own rows waited 19 s behind another user's slow UPDATE, 59 s behind two).

Now a statement on a USER table first holds its owner's lock of the table
(`statement`): one user's writes to the table run one at a time, as before,
so nothing changes that user's rows between an UPDATE's or DELETE's look-up
and its write: no other user's statement can (every row belongs to its
owner, every write is the caller's own rows, keys are unique per owner),
and flushes only move rows. The `write_lock` is held only around the commit
(`committing`): the sequence numbers, the key check, the one RocksDB put and
the change log's entry, in the same order as before, so a BACKUP's snapshot
still sees whole statements and archived changes keep their order. An ALTER
TABLE between look-up and commit changes the definition the rows were read
under: the statement runs again (`Replaced`), as after a DROP.

On SHARED and STREAM tables every writer may change every row: there the
statement's lock is the `write_lock` itself, held from look-up to commit."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from catalog import Table, TableSchema

from .buffer import TableState
from .replaced import Replaced
from .timing import TimedLock, bounded


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock, self.users = TimedLock("user"), 0


class _OwnerLocks:
    """One TimedLock per (table uid, owner) while a statement holds or waits
    for it: the entry goes with its last user, so users who wrote once keep
    nothing."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], _Entry] = {}

    @contextlib.contextmanager
    def held(self, key: tuple[str, str]) -> Iterator[None]:
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = _Entry()
            entry.users += 1
        try:
            with bounded(entry.lock):
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


OWNERS = _OwnerLocks()


@contextlib.contextmanager
def statement(st: TableState, owner: str | None) -> Iterator[None]:
    """What a writing statement holds from before its rows are found to its
    commit: its owner's lock of a USER table (`owner` set), else `write_lock`."""
    if owner is None:
        with st.writing():
            yield
        return
    with OWNERS.held((st.uid, owner)):
        if st.dropped:
            raise Replaced(f"{st.table.namespace}.{st.table.name}")
        yield


@contextlib.contextmanager
def whole(st: TableState, owner: str | None) -> Iterator[None]:
    """`statement` and `write_lock` at once: an INSERT, whose slow part (its
    SELECT) ran before either."""
    if owner is None:
        with st.writing():
            yield
        return
    with statement(st, owner), st.writing():
        yield


@contextlib.contextmanager
def committing(st: TableState, table: Table, schema: TableSchema) -> Iterator[None]:
    """`write_lock` for the commit of rows read under `table` and `schema`;
    `Replaced` (run again, nothing written) if an ALTER TABLE changed them."""
    with st.writing():
        if st.table is not table or st.schema is not schema:
            raise Replaced(f"{st.table.namespace}.{st.table.name}")
        yield
