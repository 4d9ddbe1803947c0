"""A RESTORE ... WITH (replace = true) whose install meets one table's lock held
by a slow statement waits for it holding no other table's lock
(storage/lockset.py). It took the old tables' locks in order, blocking: behind
a slow UPDATE of one table it held the tables before it, and a one-row INSERT
into one of those waited 58.5 s (the UPDATE's query timeout), CANCELLED past
its own."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from server.app import CAIRN
from server.executor import execute
from server.session import Interrupt, Session
from tests.helpers import job_row, ok, rows, sql, state, wait_job


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


# --- a KILL, a PAUSE and a cancel while the wait lasts ---------------------------
# Until 2026-12-07 the wait for the busy lock looked at nothing: a KILL JOB of
# the restore waiting behind a slow UPDATE answered "completed before the kill
# could stop it" once the UPDATE ended, and the restore installed.

DEADLINE = 60.0  # seconds a step may take on a loaded machine


class Busy:
    """Table `name` of namespace `ns`: its write lock held by another thread (as
    a slow UPDATE holds it) until `free`; `tried` once another thread tries it."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch, ns: str, name: str) -> None:
        st = state(client).engine.tables.state(ns, name)
        self.holder: list[int] = []
        self.tried, self.taken, self.done = threading.Event(), threading.Event(), threading.Event()
        monkeypatch.setattr(st, "write_lock", Spy(st.write_lock, self.holder, self.tried))
        self.lock = st.write_lock
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()
        assert self.taken.wait(30)

    def _hold(self) -> None:
        self.holder.append(threading.get_ident())
        with self.lock:
            self.taken.set()
            self.done.wait(180)

    def free(self) -> None:
        self.done.set()
        self.thread.join(30)


async def until(client: Any, job_id: str, check: Any) -> dict[str, Any]:
    """The job's row once `check(row)` holds (DEADLINE s at most)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        row = await job_row(client, job_id)
        if check(row):
            return row
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.05)


async def two_tables(client: Any, ns: str = "app") -> None:
    await ok(client, f"CREATE NAMESPACE {ns}; CREATE TABLE {ns}.a (id BIGINT PRIMARY KEY);"
                     f"CREATE TABLE {ns}.b (id BIGINT PRIMARY KEY); INSERT INTO {ns}.a VALUES (1);"
                     f"INSERT INTO {ns}.b VALUES (1)")


RESTORES = {
    "database": ("BACKUP DATABASE app TO 'nightly'",
                 "RESTORE DATABASE app FROM 'nightly' WITH (replace = true, detached = true)"),
    "table": ("BACKUP DATABASE app TO 'nightly'",
              "RESTORE TABLE app.b FROM 'nightly' WITH (replace = true, detached = true)"),
    "all": ("BACKUP DATABASE app, other TO 'nightly'",
            "RESTORE ALL FROM 'nightly' WITH (replace = true, detached = true)"),
}


async def waiting_restore(client: Any, monkeypatch: pytest.MonkeyPatch,
                          kind: str) -> tuple[Busy, str]:
    """app (and `other`): backed up, then a row 2 in every table; the restore
    started and its install waiting for app.b's busy write lock."""
    backup, restore = RESTORES[kind]
    await two_tables(client)
    await two_tables(client, "other")
    await ok(client, backup)
    for t in ("app.a", "app.b", "other.a", "other.b"):
        await ok(client, f"INSERT INTO {t} VALUES (2)")
    busy = Busy(client, monkeypatch, "app", "b")
    try:
        job_id = (await ok(client, restore))[0]["rows"][0]["job_id"]
        assert await asyncio.to_thread(busy.tried.wait, DEADLINE)  # the install met the lock
    except BaseException:
        busy.free()
        raise
    return busy, job_id


async def all_old(client: Any) -> None:
    """Nothing restored: every table still has the row written after the backup."""
    for t in ("app.a", "app.b", "other.a", "other.b"):
        assert await rows(client, f"SELECT id FROM {t} ORDER BY id") == [{"id": 1}, {"id": 2}], t


@pytest.mark.parametrize("kind", list(RESTORES))
async def test_a_kill_while_the_install_waits_for_a_lock_installs_nothing(
        client: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    busy, job_id = await waiting_restore(client, monkeypatch, kind)
    try:
        killed = await asyncio.wait_for(sql(client, f"KILL JOB '{job_id}'"), DEADLINE)
        assert killed[0] == 200, killed  # it stopped while the lock was still held
        assert killed[1]["results"][0]["rows"] == [{"job_id": job_id, "status": "cancelled"}]
    finally:
        busy.free()
    row = await wait_job(client, job_id, DEADLINE)
    assert row["status"] == "cancelled", row
    await all_old(client)
    await ok(client, "INSERT INTO app.b VALUES (3)")  # no lock was left held


async def test_a_pause_while_the_install_waits_parks_it_holding_nothing(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    busy, job_id = await waiting_restore(client, monkeypatch, "database")
    try:
        await asyncio.wait_for(ok(client, f"PAUSE JOB '{job_id}'"), DEADLINE)
        await until(client, job_id, lambda r: r["status"] == "paused")
    finally:
        busy.free()
    await all_old(client)  # it installs nothing while paused
    await ok(client, "INSERT INTO app.b VALUES (3)")  # and holds no lock
    assert (await job_row(client, job_id))["status"] == "paused"
    await ok(client, f"RESUME JOB '{job_id}'")
    row = await wait_job(client, job_id, DEADLINE)
    assert row["status"] == "completed", row
    assert await rows(client, "SELECT id FROM app.b") == [{"id": 1}]  # the backup's


async def test_a_job_parked_at_the_lock_waits_for_its_resume_not_the_lock(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paused at the lock, the row named the lock while the job waited only for
    its RESUME; resumed with the lock still busy, it names the lock again."""
    busy, job_id = await waiting_restore(client, monkeypatch, "database")
    try:
        await until(client, job_id, lambda r: r.get("waiting_for"))
        await asyncio.wait_for(ok(client, f"PAUSE JOB '{job_id}'"), DEADLINE)
        row = await until(client, job_id, lambda r: r["status"] == "paused")
        assert row["waiting_for"] is None, row
        await ok(client, f"RESUME JOB '{job_id}'")
        row = await until(client, job_id, lambda r: r["status"] == "running"
                          and r.get("waiting_for"))
        assert row["waiting_for"] == "the write lock of table app.b", row
    finally:
        busy.free()
    row = await wait_job(client, job_id, DEADLINE)
    assert row["status"] == "completed" and row["waiting_for"] is None, row


async def test_the_job_row_says_which_lock_the_install_waits_for(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    busy, job_id = await waiting_restore(client, monkeypatch, "database")
    try:
        row = await until(client, job_id, lambda r: r.get("waiting_for"))
        assert row["status"] == "running"
        assert row["waiting_for"] == "the write lock of table app.b", row
        shown = (await ok(client, f"SHOW JOB '{job_id}'"))[0]["rows"]
        assert shown[0]["waiting_for"] == "the write lock of table app.b"
    finally:
        busy.free()
    row = await wait_job(client, job_id, DEADLINE)
    assert row["status"] == "completed" and row["waiting_for"] is None, row


async def test_a_drop_namespace_cancelled_while_it_waits_for_a_lock_stops_at_once(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DROP NAMESPACE is no job: a client's cancel (pgwire's CancelRequest)
    stops it. It stopped only once the slow statement had let the lock go."""
    await two_tables(client)
    cairn = client.server.app[CAIRN]
    session = Session(user_id="admin", role="admin")
    session.interrupt = Interrupt()
    busy = Busy(client, monkeypatch, "app", "b")
    try:
        task = asyncio.ensure_future(execute(cairn, session, "DROP NAMESPACE app CASCADE"))
        assert await asyncio.to_thread(busy.tried.wait, DEADLINE)
        assert session.interrupt.fire()
        outcome = await asyncio.wait_for(task, DEADLINE)  # the lock still held
        assert outcome.error is not None and outcome.error.error.code == "CANCELLED"
    finally:
        busy.free()
    assert await rows(client, "SELECT id FROM app.b ORDER BY id") == [{"id": 1}]
