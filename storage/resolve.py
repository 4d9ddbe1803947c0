"""Every table one statement reads, resolved and snapshotted at one moment
with respect to DDL and restores.

A RESTORE … WITH (replace = true) (or RESTORE ALL) swaps a namespace's tables
in one catalog batch, under each old table's `lock`, marking the old states
dropped. A query resolves its tables by name one by one, each snapshot under
its own table's lock: so without more, a query could read one table from
before the swap and another from after it (two backups at once), or resolve
a state just before the swap and snapshot it just after (a dropped state:
no files, no rows, an empty table).

So a dropped state is never read (`take_snapshot` raises `Replaced` under the
table's lock), and when a statement reads two tables or more, each state is
checked again, under its lock, once all are taken: still live, same schema
version. Drops and schema changes are for ever (a dropped state stays
dropped, a version only grows), so if every check passes, every state was
live and unchanged at the moment the last snapshot was taken: one moment for
all of them. Otherwise everything is released and taken again; after
`ATTEMPTS` such rounds, once more under the registry's `ddl` lock (`frozen`),
which no DDL or install can pass. One table, the hot path, costs one
attribute read more than before."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from catalog.errors import Unavailable

from .replaced import Replaced as Replaced  # (re-exported: query, fast, dml)

if TYPE_CHECKING:
    from .buffer import TableState

ATTEMPTS = 3
WRITE_ATTEMPTS = 8  # `written`: runs of a write statement whose table was replaced

K = TypeVar("K")
S = TypeVar("S")
T = TypeVar("T")


def unchanged(st: TableState, version: int) -> bool:
    """Is `st` still live, at schema version `version` (under its lock, which
    an install holds while it commits and marks the old tables dropped)?"""
    with st.lock:
        return not st.dropped and st.table.schema_version == version


def at_one_moment(
    wanted: list[K],
    take: Callable[[K], tuple[TableState, int, S, str]],
    unpin: Callable[[str], None],
    frozen: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> dict[K, tuple[S, str]]:
    """`take(key)` -> (state, schema version, snapshot, pin) for each key of
    `wanted` (once per key), all at one moment (see the module's doc):
    {key: (snapshot, pin)}, in `wanted`'s order. On any error nothing stays pinned."""
    for attempt in range(ATTEMPTS + 1):
        last = attempt == ATTEMPTS and frozen is not None
        held = frozen() if last else contextlib.nullcontext()  # type: ignore[misc]
        got: dict[K, tuple[TableState, int, S, str]] = {}
        try:
            with held:
                try:
                    for key in wanted:
                        if key not in got:
                            got[key] = take(key)
                except Replaced:
                    pass  # resolve them all again
                else:
                    if len(got) < 2 or all(unchanged(st, v) for st, v, _, _ in got.values()):
                        return {k: (snap, pin) for k, (_, _, snap, pin) in got.items()}
        except BaseException:
            for _, _, _, pin in got.values():
                unpin(pin)
            raise
        for _, _, _, pin in got.values():
            unpin(pin)
    raise Unavailable("the tables this statement reads kept being replaced while it "
                      "read them (a restore or DDL in a loop): run it again")


def written(run: Callable[[], T]) -> T:
    """`run()`, a write statement's work from the lookup of its table by name,
    run again while it raises `Replaced` (TableState.writing): the table was
    dropped, or a RESTORE ... WITH (replace = true) swapped in a new one, while
    the statement waited for its write_lock, and nothing of it was written.
    The name is looked up again: the new table, or NotFound if it is gone.
    (`Table 'ns.t' does not exist` was the answer for a table there before,
    during and after the swap.)"""
    for _ in range(WRITE_ATTEMPTS):
        try:
            return run()
        except Replaced:
            continue
    raise Unavailable("the table this statement writes kept being replaced while it waited "
                      "for it (a restore or DDL in a loop): run it again")
