"""A RESTORE ... WITH (replace = true) whose install meets one table's lock held
by a slow statement waits for it holding no other table's lock
(storage/lockset.py). It took the old tables' locks in order, blocking: behind
a slow UPDATE of one table it held the tables before it, and a one-row INSERT
into one of those waited 58.5 s (the UPDATE's query timeout), CANCELLED past
its own."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.helpers import ok, rows, sql, state


class Spy:
    """A table's lock that says when a thread other than its holder tries it."""

    def __init__(self, real: Any, holder: list[int], tried: threading.Event) -> None:
        self.real, self.holder, self.tried = real, holder, tried

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if threading.get_ident() not in self.holder:
            self.tried.set()
        return bool(self.real.acquire(blocking, timeout))

    def release(self) -> None:
        self.real.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_restore_waiting_for_one_table_holds_no_other(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.a (id BIGINT PRIMARY KEY);"
                     "CREATE TABLE app.b (id BIGINT PRIMARY KEY); INSERT INTO app.a VALUES (1);"
                     "INSERT INTO app.b VALUES (1); BACKUP DATABASE app TO 'nightly'")
    registry = state(client).engine.tables
    first, busy = sorted((registry.state("app", t) for t in "ab"), key=lambda s: s.uid)
    holder: list[int] = []
    tried, taken, done = threading.Event(), threading.Event(), threading.Event()
    monkeypatch.setattr(busy, "write_lock", Spy(busy.write_lock, holder, tried))

    def slow_statement() -> None:  # holds the later table's write_lock, as a slow UPDATE does
        holder.append(threading.get_ident())
        with busy.write_lock:
            taken.set()
            done.wait(120)

    holding = threading.Thread(target=slow_statement)
    holding.start()
    try:
        assert await asyncio.to_thread(taken.wait, 30)
        restore = asyncio.create_task(
            sql(client, "RESTORE DATABASE app FROM 'nightly' WITH (replace = true)"))
        assert await asyncio.to_thread(tried.wait, 60)  # the install met the busy lock
        insert = asyncio.create_task(
            sql(client, f"INSERT INTO app.{first.table.name} VALUES (2)"))
        finished, _ = await asyncio.wait({insert}, timeout=60)
        assert insert in finished, "the INSERT waited behind the restore's wait"
        assert insert.result()[0] == 200, insert.result()
        assert not restore.done()  # still waiting for the busy table
    finally:
        done.set()
        holding.join()
    assert (await restore)[0] == 200
    assert await rows(client, f"SELECT id FROM app.{first.table.name}") == [{"id": 1}]
    await insert
