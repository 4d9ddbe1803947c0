"""A DDL statement cancelled while it waits for a lock writes nothing.

pgwire answers a CancelRequest for a statement that is not a DuckDB query
with 57014 after CANCEL_GRACE and abandons the statement's task; its thread
waited on for the lock, got it, and made (or dropped) the table anyway: the
client was told "canceling statement" for a change that landed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from server.app import CAIRN
from server.executor import execute
from server.session import Interrupt, Session
from tests.helpers import ok, rows

SETUP = ["CREATE NAMESPACE cd", "CREATE TABLE cd.keep (id BIGINT PRIMARY KEY, v TEXT)",
         "CREATE NAMESPACE gone"]
CASES = {
    "create namespace": ("CREATE NAMESPACE cd2", "SHOW NAMESPACES"),
    "drop namespace": ("DROP NAMESPACE gone", "SHOW NAMESPACES"),
    "create table": ("CREATE TABLE cd.t (id BIGINT PRIMARY KEY)", "SHOW TABLES IN cd"),
    "drop table": ("DROP TABLE cd.keep", "SHOW TABLES IN cd"),
    "add column": ("ALTER TABLE cd.keep ADD COLUMN w TEXT", "DESCRIBE TABLE cd.keep"),
    "drop column": ("ALTER TABLE cd.keep DROP COLUMN v", "DESCRIBE TABLE cd.keep"),
}


class Held:
    """The registry's `ddl` lock, held by another thread until `release`."""

    def __init__(self, lock: Any) -> None:
        self.taken, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(lock,), daemon=True)
        self.thread.start()
        assert self.taken.wait(5)

    def _hold(self, lock: Any) -> None:
        with lock:
            self.taken.set()
            self.done.wait(10)

    def release(self) -> None:
        self.done.set()
        self.thread.join(5)


@pytest.mark.parametrize("case", list(CASES))
async def test_a_ddl_cancelled_while_it_waits_for_a_lock_writes_nothing(client: Any,
                                                                         case: str) -> None:
    for sql in SETUP:
        await ok(client, sql)
    statement, look = CASES[case]
    before = await rows(client, look)
    cairn = client.server.app[CAIRN]
    session = Session(user_id="admin", role="admin")
    session.interrupt = Interrupt()
    held = Held(cairn.engine.tables.ddl)
    try:
        task = asyncio.ensure_future(execute(cairn, session, statement))
        await asyncio.sleep(0.3)
        assert not task.done()  # it waits for the lock
        assert session.interrupt.fire()  # not committed: cancelled
    finally:
        held.release()
    outcome = await asyncio.wait_for(task, 10)
    assert outcome.error is not None and outcome.error.error.code == "CANCELLED"
    assert await rows(client, look) == before


async def test_a_ddl_not_cancelled_still_runs_with_an_interrupt_it_never_got(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE cd")
    cairn = client.server.app[CAIRN]
    session = Session(user_id="admin", role="admin")
    session.interrupt = Interrupt()
    outcome = await execute(cairn, session, "CREATE TABLE cd.t (id BIGINT PRIMARY KEY)")
    assert outcome.error is None
    assert not session.interrupt.fire()  # past its commit: a late cancel changes nothing
    assert [r["table_name"] for r in await rows(client, "SHOW TABLES IN cd")] == ["t"]
