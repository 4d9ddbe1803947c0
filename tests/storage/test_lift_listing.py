"""A job process lifted out of SCHED_IDLE (a starved call, or the calls soon
after one) has every thread lifted before its call and lowered again after
it. Each time its threads were listed (`os.listdir` of /proc/<pid>/task),
which takes the server's GIL back after every entry: ~15 takes, twice a
call, beside the statements on the event loop (60 a BACKUP with keep_last
on a busy machine, bench/gil_takes.py). Now they are listed again only when
the thread count changed or one of them has gone; a thread that ended and
another that started between two calls (the count the same) are still
found."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import pytest

from storage import jobproc, priority
from tests.storage.test_jobproc import Job, idle_mode  # noqa: F401 (its fixture)

_HELD: list[tuple[threading.Thread, threading.Event]] = []  # in the job process


def start_a_thread() -> int:
    """In the job process: a thread that stays (until `swap_a_thread`)."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    _HELD.append((t, stop))
    return int(t.native_id or 0)


def swap_a_thread() -> tuple[int, int, int]:
    """In the job process: the thread `start_a_thread` left ends and another
    starts (the count the same); (this thread's policy, the new one's id, pid)."""
    t, stop = _HELD.pop()
    stop.set()
    t.join()
    return os.sched_getscheduler(0), start_a_thread(), os.getpid()


def policies(pid: int, listdir: Any) -> dict[int, int]:
    out = {}
    for tid in listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            out[int(tid)] = os.sched_getscheduler(int(tid))
    return out


def test_a_lifted_call_does_not_list_its_process_threads_each_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobproc, "STARVE_SECONDS", 3600.0)  # lifted only when told
    monkeypatch.setattr(jobproc, "_starved_at", time.monotonic())  # calls start lifted
    first = jobproc.call(Job(), start_a_thread)  # its threads listed (the first lift)
    real = os.listdir
    listed: list[str] = []
    monkeypatch.setattr(priority.os, "listdir", lambda path: (
        listed.append(str(path)), real(path))[1])
    policy, second, pid = jobproc.call(Job(), swap_a_thread)
    assert policy == os.SCHED_OTHER  # lifted for the call
    seen = policies(pid, real)
    deadline = time.monotonic() + 10
    while first in seen and time.monotonic() < deadline:
        # join() returns as the thread lets go of Python, a moment before the
        # kernel's thread is gone from /proc (under -n 4 it was still listed)
        time.sleep(0.01)
        seen = policies(pid, real)
    assert second in seen and first not in seen, (first, second, sorted(seen))
    # The new thread (started lifted, as its creator was) is back in SCHED_IDLE
    # with every other: the one gone made the threads be listed again.
    assert set(seen.values()) == {os.SCHED_IDLE}, seen
    # The call's own listing, after the swap, may still have found the thread
    # that ended (the kernel lists it a moment after join()): one more call
    # finds the count changed and lists them again, once (the CI run of
    # 2026-12-08 did). From then on the same threads are never listed.
    jobproc.call(Job(), os.sched_getscheduler, 0)
    listed.clear()
    for _ in range(3):  # the same threads: not listed at all
        assert jobproc.call(Job(), os.sched_getscheduler, 0) == os.SCHED_OTHER
    assert listed == []
    assert set(policies(pid, real).values()) == {os.SCHED_IDLE}
    jobproc.call(Job(), start_a_thread)  # one more: the count changed, listed again
    assert set(policies(pid, real).values()) == {os.SCHED_IDLE}
    assert listed
