"""storage/lockset.py: every lock held inside, none after; a busy lock waited
for with nothing else held; the blocking fallback."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from storage import lockset
from storage.timing import TimedLock


@dataclass
class St:
    uid: str
    flush_lock: TimedLock = field(default_factory=lambda: TimedLock("flush"))
    write_lock: TimedLock = field(default_factory=lambda: TimedLock("write"))


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
