"""One-row statements on the event loop (Cairn.run_small, `[server]
inline_statements = true`): run there when nothing would make them wait, else
on a statement thread, with the same effect either way."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import config as config_mod
from server import state as state_mod
from server.app import close_state, open_state
from server.executor import execute
from server.session import Session
from server.state import Cairn
from storage import timing


@pytest.fixture
async def cairn(tmp_path: Path) -> Any:
    cfg = config_mod.from_dict({"storage": {"data_dir": str(tmp_path)}, "pgwire": {"port": 0},
                                "server": {"inline_statements": True}})
    state = await asyncio.get_running_loop().run_in_executor(None, open_state, cfg)
    for text in ("CREATE NAMESPACE app",
                 "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)",
                 "CREATE TABLE app.other (id BIGINT PRIMARY KEY, v TEXT)",
                 "INSERT INTO app.other VALUES (1, 'x')"):
        assert (await execute(state, Session(user_id=None), text)).error is None
    yield state
    await asyncio.get_running_loop().run_in_executor(None, close_state, state)


@contextlib.contextmanager
def held_by_another_thread(lock: Any) -> Iterator[None]:
    """Inside the block, a second thread holds `lock` (for up to 10 s)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(10)
        yield
    finally:
        release.set()
        holder.join()


def _count_pool(cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    used: list[str] = []
    real = cairn.run

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        used.append(getattr(fn, "__name__", "?"))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(cairn, "run", run)
    return used


async def _ok(cairn: Cairn, text: str) -> Any:
    out = await execute(cairn, Session(user_id=None), text)
    assert out.error is None, (text, out.error)
    return out.results[0]


async def test_one_row_statements_run_on_the_event_loop(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    used = _count_pool(cairn, monkeypatch)
    assert (await _ok(cairn, "INSERT INTO app.t VALUES (1, 'a')")).row_count == 1
    assert (await _ok(cairn, "SELECT id, v FROM app.t WHERE id = 1")).rows == [{"id": 1, "v": "a"}]
    assert used == []
    # Not one row: the statement thread, as always.
    await _ok(cairn, "SELECT id, v FROM app.t WHERE v = 'a'")
    await _ok(cairn, "INSERT INTO app.t VALUES (2, 'b'), (3, 'c')")
    assert len(used) == 2


async def test_a_held_table_lock_is_awaited_and_the_statement_runs_on_the_loop(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """While another thread holds app.t's write lock, an INSERT into it waits
    without blocking the event loop (a lookup in another table is answered
    meanwhile) and without a statement thread: once the lock is let go it
    runs on the loop."""
    used = _count_pool(cairn, monkeypatch)
    st = cairn.engine.state("app", "t")
    with held_by_another_thread(st.write_lock):
        insert = asyncio.create_task(_ok(cairn, "INSERT INTO app.t VALUES (7, 'late')"))
        other = await asyncio.wait_for(_ok(cairn, "SELECT v FROM app.other WHERE id = 1"), 5)
        assert other.rows == [{"v": "x"}]
        await asyncio.sleep(0.05)
        assert not insert.done()
    assert (await asyncio.wait_for(insert, 10)).row_count == 1
    assert used == []
    assert (await _ok(cairn, "SELECT v FROM app.t WHERE id = 7")).rows == [{"v": "late"}]


async def test_a_lock_met_again_and_again_sends_the_statement_to_a_thread(
        cairn: Cairn) -> None:
    """A statement that meets a table lock held LOCK_TRIES times in a row (a
    stream of statements on threads taking it first) goes to a statement
    thread, where it waits its turn; a signal without a lock (DuckDB) goes
    there at once."""
    lock = timing.TimedLock("write")
    where: list[bool] = []

    def meets(what: timing.TimedLock | None) -> Any:
        def fn() -> str:
            where.append(timing.waiting_allowed())
            if not timing.waiting_allowed():
                raise timing.WouldWait("held", what)
            return "done"
        return fn

    assert await cairn.run_small(meets(lock)) == "done"
    assert where == [False] * state_mod.LOCK_TRIES + [True]
    where.clear()
    assert await cairn.run_small(meets(None)) == "done"
    assert where == [False, True]


async def test_a_key_that_needs_duckdb_is_checked_on_a_thread(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a flush the key may be in the file: the exact check (DuckDB)
    runs on a statement thread, and what the first try did is not visible."""
    await _ok(cairn, "INSERT INTO app.t VALUES (1, 'a')")
    await _ok(cairn, "FLUSH TABLE app.t")
    used = _count_pool(cairn, monkeypatch)
    out = await execute(cairn, Session(user_id=None), "INSERT INTO app.t VALUES (1, 'again')")
    assert out.error is not None and out.error.error.code == "ALREADY_EXISTS"
    assert used == ["write"]
    assert (await _ok(cairn, "SELECT v FROM app.t WHERE id = 1")).rows == [{"v": "a"}]
    assert cairn.engine.state("app", "t").buffered_rows() == 0


@pytest.mark.parametrize("setting", [None, True, False])
async def test_on_by_default_and_off_when_set_false(tmp_path: Path, setting: bool | None) -> None:
    server = {} if setting is None else {"inline_statements": setting}
    cfg = config_mod.from_dict({"storage": {"data_dir": str(tmp_path)}, "pgwire": {"port": 0},
                                "server": server})
    state = await asyncio.get_running_loop().run_in_executor(None, open_state, cfg)
    try:
        seen: list[int] = []
        assert await state.run_small(lambda: seen.append(threading.get_ident()) or 1) == 1
        on_loop = seen == [threading.get_ident()]
        assert on_loop is (setting is not False)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, close_state, state)


async def _held_elsewhere(cairn: Cairn, lock: Any, monkeypatch: pytest.MonkeyPatch,
                          text: str) -> list[str]:
    """Run `text` while another thread holds `lock` (for up to 10 s): the
    event loop keeps running (a 10 ms sleep on it ends within a second), and
    `text` finishes on a statement thread once the lock is free. Returns the
    pool's uses."""
    used = _count_pool(cairn, monkeypatch)
    with held_by_another_thread(lock):
        task = asyncio.create_task(_ok(cairn, text))
        for _ in range(5):
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            assert time.monotonic() - t0 < 1.0
        assert not task.done()
    await asyncio.wait_for(task, 10)
    return used


async def test_the_registry_lock_held_sends_the_statement_to_a_thread(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table registry's lock is held while a thread loads a table's buffer
    (a first use after a restart can take long): an INSERT needing it does not
    wait on the event loop."""
    used = await _held_elsewhere(cairn, cairn.engine.tables._lock, monkeypatch,
                                 "INSERT INTO app.t VALUES (8, 'r')")
    assert "write" in used
    assert (await _ok(cairn, "SELECT v FROM app.t WHERE id = 8")).rows == [{"v": "r"}]


async def test_an_archive_commit_lock_held_sends_the_insert_to_a_thread(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """An archived namespace's commit lock (held while START ARCHIVING scans the
    log, and at a snapshot's cut): an INSERT into it does not wait on the loop."""
    changes = cairn.engine.changes
    ns = changes._state("app")
    monkeypatch.setattr(ns, "active", True)  # rows of app now pass through the lock
    monkeypatch.setattr(changes, "_ns", {**changes._ns, "app": ns})
    used = await _held_elsewhere(cairn, ns.lock, monkeypatch, "INSERT INTO app.t VALUES (9, 'a')")
    assert used == ["write"]


class _CountedLock(timing.TimedLock):
    __slots__ = ("waits",)

    def __init__(self) -> None:
        super().__init__("write")
        self.waits = 0

    def when_free(self, wake: Any) -> bool:
        free = super().when_free(wake)
        self.waits += not free
        return free


async def test_no_wake_up_is_lost_while_threads_churn_the_lock(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three threads take and let go a table lock as fast as they can while
    400 statements on the loop need it: each that meets it held waits for a
    release (or finds it free at once) and tries again, and every one ends.
    A release missed between the wait's sign-up and its check would hang one.
    The threads stop after 20,000 waits (a few per statement; 0.1-0.3 s on
    a quiet machine): as fast as they can until all 400 ended, they cost
    each statement thousands of waits, more than 60 s on a loaded machine.
    A wake-up lost before they stop is never made up for."""
    monkeypatch.setattr(state_mod, "LOCK_TRIES", 10_000)
    lock = _CountedLock()
    stop = threading.Event()

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set() and lock.waits < 20_000:
            with lock:
                if rng.random() < 0.3:
                    time.sleep(0.0002)

    def statement() -> int:
        with lock:
            return 1

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        done = await asyncio.wait_for(
            asyncio.gather(*(cairn.run_small(statement) for _ in range(400))), 60)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert done == [1] * 400 and lock.waits > 0


def test_when_free_calls_back_once_at_the_outermost_release() -> None:
    lock = timing.TimedLock("write")
    woken: list[int] = []
    assert lock.when_free(lambda: woken.append(1)) is True  # free: nothing to wait for
    with lock:
        pass
    assert woken == []  # and no call later
    step, done = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            with lock:  # re-entered
                step.set()
                done.wait(10)
                done.clear()
            step.set()  # an inner release: still held
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert step.wait(10)
        step.clear()
        assert lock.when_free(lambda: woken.append(threading.get_ident())) is False
        done.set()
        assert step.wait(10)
        time.sleep(0.02)
        assert woken == []
        done.set()
    finally:
        done.set()
        t.join()
    assert woken == [t.ident]  # from the releasing thread, once
    with lock:
        pass
    assert woken == [t.ident]


def test_no_waiting_raises_where_the_lock_would_wait() -> None:
    lock = timing.TimedLock("table")
    with lock, timing.no_waiting(), lock:  # re-entered by its holder: no wait
        pass
    taken = threading.Event()
    done = threading.Event()

    def other() -> None:
        with lock:
            taken.set()
            done.wait(10)

    t = threading.Thread(target=other)
    t.start()
    taken.wait(10)
    try:
        with timing.no_waiting(), pytest.raises(timing.WouldWait), lock:
            pass
        assert timing.waiting_allowed()
    finally:
        done.set()
        t.join()
    with lock:  # free again, and waiting is back to normal outside the block
        pass
