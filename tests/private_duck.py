"""Test doubles of storage/spelling.py's private DuckDB (`spelling._con`,
`spelling._run`): a DuckDB whose casts of a column are made slow, stopped by
an interrupt as DuckDB's query is, and a count of the queries it is asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import pytest


class SlowDuck:
    """The private DuckDB, its queries that `slowed(query)` of more than one
    row `per_row` seconds a row, stopped by `interrupt` as DuckDB's query is
    (one sent before the query starts is dropped, as DuckDB drops it).
    `started` is set when such a query starts; `cast` counts their rows."""

    def __init__(self, slowed: Callable[[str], bool], per_row: float) -> None:
        self.real = duckdb.connect(":memory:")
        self.slowed, self.per_row = slowed, per_row
        self.rows = 0
        self.cast = 0
        self.started = threading.Event()
        self._stop = threading.Event()

    def register(self, name: str, table: Any) -> None:
        self.rows = table.num_rows
        self.real.register(name, table)

    def unregister(self, name: str) -> None:
        self.rows = 0
        self.real.unregister(name)

    def interrupt(self) -> None:
        self._stop.set()
        self.real.interrupt()

    def execute(self, query: str, params: Any = None) -> Any:
        self._stop.clear()
        if self.slowed(query) and self.rows > 1:
            self.started.set()
            if self._stop.wait(self.rows * self.per_row):
                raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
            self.cast += self.rows
        return self.real.execute(query, params)


def counted_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries the private DuckDB is asked from now on (the test's)."""
    from storage import spelling

    queries: list[str] = []
    run = spelling._run

    def counted(query: str, *args: Any, **kw: Any) -> list[Any]:
        queries.append(query)
        return run(query, *args, **kw)

    monkeypatch.setattr(spelling, "_run", counted)
    return queries


def cancel_midway(work: Callable[[], object], started: threading.Event, join: float,
                  never: str) -> tuple[BaseException | None, float, bool]:
    """Run `work` on a thread under a statement's Interrupt; once `started`
    is set (asserted within 60 s, else `never`), fire the interrupt and wait
    at most `join` s for the thread: (what `work` raised, None if it returned;
    seconds from the interrupt to its end; whether it still runs)."""
    from server.session import Interrupt
    from storage import stopping

    interrupt = Interrupt()
    result: list[BaseException | None] = []

    def statement() -> None:
        try:
            with stopping.stoppable(interrupt):
                work()
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            result.append(exc)

    thread = threading.Thread(target=statement, daemon=True)
    thread.start()
    assert started.wait(60), never
    fired = time.monotonic()
    assert interrupt.fire()
    thread.join(join)
    return (result[0] if result else None), time.monotonic() - fired, thread.is_alive()
