"""storage/lockset.py: every lock held inside, none after; a busy lock waited
for with nothing else held; the blocking fallback."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from catalog.errors import Cancelled
from storage import lockset
from storage.timing import TimedLock


@dataclass
class St:
    uid: str
    table: SimpleNamespace = field(init=False)
    flush_lock: TimedLock = field(default_factory=lambda: TimedLock("flush"))
    write_lock: TimedLock = field(default_factory=lambda: TimedLock("write"))

    def __post_init__(self) -> None:
        self.table = SimpleNamespace(namespace="app", name=self.uid.removeprefix("tbl-"))


def free(lock: TimedLock) -> bool:
    """Can another thread take it now?"""
    out: list[bool] = []

    def probe() -> None:
        got = lock.acquire(False)
        if got:
            lock.release()
        out.append(got)
    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return out[0]


@pytest.mark.parametrize("rounds", [lockset.ROUNDS, 0])
def test_all_held_then_all_free(monkeypatch: pytest.MonkeyPatch, rounds: int) -> None:
    monkeypatch.setattr(lockset, "ROUNDS", rounds)
    states = [St("tbl-b"), St("tbl-a")]
    locks = [lk for s in states for lk in (s.flush_lock, s.write_lock)]
    with lockset.all_held(states):
        assert not any(free(lk) for lk in locks)
    assert all(free(lk) for lk in locks)


def test_a_busy_lock_is_waited_for_alone() -> None:
    a, b = St("tbl-a"), St("tbl-b")
    taken, go, inside = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with b.write_lock:
            taken.set()
            go.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    assert taken.wait(30)

    def install() -> None:
        with lockset.all_held([a, b]):
            inside.set()

    i = threading.Thread(target=install)
    i.start()
    for _ in range(50):  # the install waits for b; a stays free meanwhile
        assert free(a.write_lock) and free(a.flush_lock)
        assert not inside.is_set()
        if not free(b.flush_lock):
            break
        threading.Event().wait(0.01)
    go.set()
    t.join()
    i.join()
    assert inside.is_set()


class Job:
    """A storage Work (storage/work.py) whose KILL a test sets; it records
    what it was said to wait for."""

    pause_requested = False

    def __init__(self) -> None:
        self.killed = threading.Event()
        self.said: list[str | None] = []

    @property
    def cancelled(self) -> bool:
        return self.killed.is_set()

    def check_cancelled(self) -> None:
        if self.killed.is_set():
            raise Cancelled("job was cancelled")

    def waiting(self, what: str | None) -> None:
        self.said.append(what)
        if what is not None:
            self.killed.set()  # killed once it says it waits


@pytest.mark.parametrize("rounds", [lockset.ROUNDS, 0])
def test_a_kill_stops_the_wait_and_lets_every_lock_go(monkeypatch: pytest.MonkeyPatch,
                                                      rounds: int) -> None:
    """Also in the blocking rounds (0 rounds: at once), where it holds the
    locks before the busy one while it waits."""
    monkeypatch.setattr(lockset, "ROUNDS", rounds)
    a, b = St("tbl-a"), St("tbl-b")
    taken, go = threading.Event(), threading.Event()

    def holder() -> None:
        with b.write_lock:
            taken.set()
            go.wait(60)

    t = threading.Thread(target=holder)
    t.start()
    assert taken.wait(30)
    job = Job()
    try:
        with pytest.raises(Cancelled), lockset.all_held([a, b], job):
            pytest.fail("every lock taken while b's was held")
        assert job.said == ["the write lock of table app.b", None]
        assert all(free(lk) for lk in (a.flush_lock, a.write_lock, b.flush_lock))
    finally:
        go.set()
        t.join()
