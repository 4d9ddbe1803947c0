"""A statement's cancellation reaches its write (storage/stopping.py): the
DuckDB query of an INSERT … SELECT, an UPDATE or a DELETE is interrupted, and
a write cancelled before its commit writes nothing. One that committed first
is past cancelling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog.errors import Cancelled
from storage import stopping
from storage.engine import Engine

from .conftest import Run, col


class Stop:
    """A Stoppable: fired before the statement runs, or at its first DuckDB query."""

    def __init__(self, fired: bool = False, at_query: bool = False) -> None:
        self.fired = fired
        self.at_query = at_query
        self.commits = 0

    def target(self, fn: Callable[[], Any] | None) -> None:
        if fn is not None and self.at_query:
            self.fired = True  # cancelled while the query phase runs, after it got its rows
        elif fn is not None and self.fired:
            fn()

    def commit(self) -> bool:
        self.commits += 1
        return not self.fired


@pytest.fixture
def table(engine: Engine, run: Run) -> Run:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("v", "VARCHAR")])
    run("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
    return run


@pytest.mark.parametrize("sql", [
    "INSERT INTO app.t SELECT i + 10, 'new' FROM range(3) r(i)",
    "UPDATE app.t SET v = 'new' WHERE id = 1",
    "DELETE FROM app.t WHERE id = 1",
    "INSERT INTO app.t VALUES (5, 'new')",
])
@pytest.mark.parametrize("when", ["before", "during the query"])
def test_a_cancelled_write_writes_nothing(table: Run, sql: str, when: str) -> None:
    stop = Stop(fired=when == "before", at_query=when != "before")
    if "VALUES" in sql and when != "before":
        stop.fired = True  # no query: cancelled as it builds its rows
    with stopping.stoppable(stop), pytest.raises(Cancelled):
        table(sql)
    assert table("SELECT id, v FROM app.t ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_a_write_not_cancelled_commits_once_past_the_point(table: Run) -> None:
    stop = Stop()
    with stopping.stoppable(stop):
        assert table("UPDATE app.t SET v = 'new' WHERE id = 1") == 1
    assert stop.commits == 1
    assert table("SELECT v FROM app.t WHERE id = 1") == [{"v": "new"}]
    assert stopping.target() is None  # the thread's stop is gone after the block
