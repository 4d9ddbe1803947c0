"""Whose writes wait for whose (storage/owner_locks.py, timing.bounded).

An UPDATE or DELETE whose WHERE ran for the whole query timeout held its
table's write lock all along: on a USER table another role user's one-row
INSERT of his own row waited 19 s behind it, and 59 s (3x his 20 s timeout)
behind two of them in a loop. Now on a USER table only the same user's
writes wait for it, and a statement waiting for a table lock is refused at
its own time limit, or its cancel, whoever holds the lock."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import config as config_mod
from server.app import close_state, open_state
from server.executor import execute
from server.session import Interrupt, Session
from server.state import Cairn
from storage import dml

HOLD = 60.0  # how long a held look-up or lock lasts at most: far past every bound asserted


@pytest.fixture
async def cairn(tmp_path: Path) -> Any:
    cfg = config_mod.from_dict({"storage": {"data_dir": str(tmp_path)}, "pgwire": {"port": 0},
                                "server": {"inline_statements": True}})
    state = await asyncio.get_running_loop().run_in_executor(None, open_state, cfg)
    for text in ("CREATE NAMESPACE app",
                 "CREATE USER TABLE app.u (k BIGINT PRIMARY KEY, v TEXT)",
                 "CREATE TABLE app.t (k BIGINT PRIMARY KEY, v TEXT)",
                 "INSERT INTO app.t VALUES (1, 'x')"):
        assert (await execute(state, Session(user_id=None), text)).error is None
    for user in ("eve", "bob"):
        await _ok(state, user, f"INSERT INTO app.u VALUES (1, '{user}')")
    yield state
    await asyncio.get_running_loop().run_in_executor(None, close_state, state)


def _as(user: str, timeout: float | None = None) -> Session:
    return Session(user_id=user, role="user", namespace="app", timeout=timeout)


async def _ok(cairn: Cairn, user: str, text: str) -> Any:
    out = await execute(cairn, _as(user), text)
    assert out.error is None, (text, out.error)
    return out.results[0]


async def _refused(cairn: Cairn, session: Session, text: str) -> tuple[str, float]:
    """The statement's error code and how long it took to come."""
    t0 = time.monotonic()
    out = await asyncio.wait_for(execute(cairn, session, text), 2 * HOLD)
    assert out.error is not None, text
    return out.error.error.code, time.monotonic() - t0


class Lookup(threading.Event):
    """Set once a held look-up is running; `calls`: how many of `user`'s ran."""

    calls = 0


@contextlib.contextmanager
def slow_lookup(monkeypatch: pytest.MonkeyPatch, user: str) -> Iterator[Lookup]:
    """`user`'s UPDATE/DELETE row look-ups run until the block ends (at most
    HOLD s): a WHERE that runs its whole query timeout, made certain."""
    entered, release = Lookup(), threading.Event()
    real = dml._matching

    def matching(engine: Any, st: Any, node: Any, where: Any, extra: Any, who: Any,
                 ns: Any) -> Any:
        if who == user:
            entered.calls += 1
            entered.set()
            release.wait(HOLD)
        return real(engine, st, node, where, extra, who, ns)

    monkeypatch.setattr(dml, "_matching", matching)
    try:
        yield entered
    finally:
        release.set()


async def _entered(event: Lookup) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, HOLD)


@pytest.mark.parametrize("slow", ["UPDATE app.u SET v = 'q' WHERE k = 1",
                                  "DELETE FROM app.u WHERE k = 1"])
async def test_another_users_slow_update_leaves_a_user_table_free(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch, slow: str) -> None:
    with slow_lookup(monkeypatch, "eve") as entered:
        eve = asyncio.ensure_future(execute(cairn, _as("eve"), slow))
        await _entered(entered)
        t0 = time.monotonic()
        one = await asyncio.wait_for(_ok(cairn, "bob", "INSERT INTO app.u VALUES (2, 'bob')"), HOLD)
        many = await asyncio.wait_for(
            _ok(cairn, "bob", "INSERT INTO app.u VALUES (3, 'b'), (4, 'b')"), HOLD)
        upd = await asyncio.wait_for(
            _ok(cairn, "bob", "UPDATE app.u SET v = 'B' WHERE k >= 3"), HOLD)
        gone = await asyncio.wait_for(_ok(cairn, "bob", "DELETE FROM app.u WHERE k = 4"), HOLD)
        took = time.monotonic() - t0
        assert not eve.done()  # eve's look-up was running all along
        assert (one.row_count, many.row_count, upd.row_count, gone.row_count) == (1, 2, 2, 1)
        assert took < 5, took  # against eve's HOLD s
    out = await asyncio.wait_for(eve, HOLD)
    assert out.error is None and out.results[0].row_count == 1
    bob = await _ok(cairn, "bob", "SELECT k, v FROM app.u ORDER BY k")
    assert bob.rows == [{"k": 1, "v": "bob"}, {"k": 2, "v": "bob"}, {"k": 3, "v": "B"}]
    mine = await _ok(cairn, "eve", "SELECT k, v FROM app.u ORDER BY k")
    assert mine.rows == ([{"k": 1, "v": "q"}] if slow.startswith("UPDATE") else [])
    from storage.owner_locks import OWNERS  # (here: a test of what was before it fails above)

    assert len(OWNERS) == 0  # nothing kept per user


async def test_the_same_users_write_waits_and_is_refused_at_its_own_timeout(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eve's own writes to the table wait for her slow UPDATE (nothing changes
    her rows between its look-up and its write), each at most its own
    timeout: one row (on the event loop) and many (on a thread)."""
    with slow_lookup(monkeypatch, "eve") as entered:
        eve = asyncio.ensure_future(execute(cairn, _as("eve"), "UPDATE app.u SET v = 'q'"))
        await _entered(entered)
        for text in ("INSERT INTO app.u VALUES (2, 'e')",
                     "INSERT INTO app.u VALUES (3, 'e'), (4, 'e')",
                     "DELETE FROM app.u WHERE k = 1"):
            code, took = await _refused(cairn, _as("eve", timeout=1.0), text)
            assert code == "CANCELLED" and took < 15, (text, code, took)
        assert not eve.done()
    out = await asyncio.wait_for(eve, HOLD)
    assert out.error is None and out.results[0].row_count == 1
    mine = await _ok(cairn, "eve", "SELECT k, v FROM app.u ORDER BY k")
    assert mine.rows == [{"k": 1, "v": "q"}]  # the refused writes wrote nothing


@contextlib.contextmanager
def held_by_another_thread(lock: Any) -> Iterator[None]:
    """Inside the block, a second thread holds `lock` (for up to HOLD s)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(HOLD)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(HOLD)
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.parametrize("text", ["INSERT INTO app.t VALUES (2, 'y')",
                                  "INSERT INTO app.t VALUES (3, 'y'), (4, 'y')",
                                  "UPDATE app.t SET v = 'z'"])
async def test_a_writer_behind_a_held_table_lock_is_refused_at_its_timeout(
        cairn: Cairn, text: str) -> None:
    """A SHARED table's write lock held (an admin's slow UPDATE, a DDL):
    the waiting statement ends at its own 1 s timeout, not the holder's end."""
    with held_by_another_thread(cairn.engine.state("app", "t").write_lock):
        code, took = await _refused(cairn, _as("bob", timeout=1.0), text)
    assert code == "CANCELLED" and took < 15, (code, took)
    rows = await _ok(cairn, "bob", "SELECT k, v FROM app.t ORDER BY k")
    assert rows.rows == [{"k": 1, "v": "x"}]


async def test_a_writer_waiting_for_a_table_lock_stops_at_its_cancel(cairn: Cairn) -> None:
    """A cancel (pgwire's CancelRequest fires the session's Interrupt) ends a
    statement thread's wait for the lock: it does not wait on, then write."""
    session = _as("bob")
    session.interrupt = Interrupt()
    with held_by_another_thread(cairn.engine.state("app", "t").write_lock):
        waiting = asyncio.ensure_future(execute(cairn, session, "INSERT INTO app.t VALUES "
                                                                "(3, 'y'), (4, 'y')"))
        await asyncio.sleep(0.2)  # waiting or not yet started: the cancel stops it either way
        assert session.interrupt.fire()
        t0 = time.monotonic()
        out = await asyncio.wait_for(waiting, 2 * HOLD)
        took = time.monotonic() - t0
    assert out.error is not None and out.error.error.code == "CANCELLED"
    assert took < 15, took
    rows = await _ok(cairn, "bob", "SELECT k FROM app.t ORDER BY k")
    assert rows.rows == [{"k": 1}]


async def test_an_alter_between_look_up_and_write_runs_the_update_again(
        cairn: Cairn, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ALTER TABLE does not wait for a USER table's UPDATE look-up (it holds
    no write lock); the UPDATE, whose rows were read under the old columns,
    writes nothing of them and runs again under the new ones."""
    with slow_lookup(monkeypatch, "eve") as entered:
        eve = asyncio.ensure_future(execute(cairn, _as("eve"), "UPDATE app.u SET v = 'q'"))
        await _entered(entered)
        alter = await asyncio.wait_for(
            execute(cairn, Session(user_id=None), "ALTER TABLE app.u ADD COLUMN w TEXT"), HOLD)
        assert alter.error is None, alter.error
        assert not eve.done()
    out = await asyncio.wait_for(eve, HOLD)
    assert out.error is None and out.results[0].row_count == 1
    assert entered.calls == 2  # found its rows again under the new columns
    mine = await _ok(cairn, "eve", "SELECT k, v, w FROM app.u ORDER BY k")
    assert mine.rows == [{"k": 1, "v": "q", "w": None}]
