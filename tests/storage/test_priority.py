"""Background threads lower their own OS priority, and only their own (Linux,
where Cairn runs: each thread has its own nice value)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from storage import priority


@pytest.fixture(autouse=True)
def level() -> Iterator[None]:
    before = priority.background_nice()
    yield
    priority.set_background_nice(before)


def in_thread(fn):  # type: ignore[no-untyped-def]
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_lowered_thread_and_its_children_only() -> None:
    priority.set_background_nice(7)
    main_before = priority.thread_nice()

    def body() -> tuple[bool, int, int]:
        ok = priority.lower_this_thread()
        child = in_thread(priority.thread_nice)  # started after: inherits
        return ok, priority.thread_nice(), child

    ok, own, child = in_thread(body)
    assert ok and own == 7 and child == 7
    assert priority.thread_nice() == main_before  # the caller's thread is untouched
    assert in_thread(priority.thread_nice) == main_before


def test_zero_leaves_threads_alone() -> None:
    priority.set_background_nice(0)
    assert in_thread(lambda: (priority.lower_this_thread(), priority.thread_nice())) == (
        False, priority.thread_nice())


def test_never_raises_priority() -> None:
    priority.set_background_nice(12)

    def body() -> int:
        priority.lower_this_thread()
        priority.set_background_nice(5)
        priority.lower_this_thread()  # already lower than 5: stays at 12
        return priority.thread_nice()

    assert in_thread(body) == 12


def test_level_is_checked() -> None:
    with pytest.raises(ValueError):
        priority.set_background_nice(20)
    with pytest.raises(ValueError):
        priority.set_background_nice(-1)


def test_at_normal_priority_from_a_lowered_thread() -> None:
    priority.set_background_nice(9)

    def body() -> tuple[int, int, int]:
        priority.lower_this_thread()
        inside = priority.at_normal_priority(priority.thread_nice)
        return priority.thread_nice(), inside, priority.at_normal_priority(lambda: 41) + 1

    assert in_thread(body) == (9, 0, 42)
    assert priority.at_normal_priority(priority.thread_nice) == priority.thread_nice()  # here


def test_at_normal_priority_raises_what_fn_raises() -> None:
    priority.set_background_nice(9)

    def body() -> str:
        priority.lower_this_thread()
        try:
            priority.at_normal_priority(lambda: 1 // 0)
        except ZeroDivisionError:
            return "raised"
        return "not raised"

    assert in_thread(body) == "raised"


def may_raise_priority() -> bool:
    """Whether this process may raise a thread's priority (root, CAP_SYS_NICE,
    RLIMIT_NICE): found out on a scratch thread."""
    import os

    def body() -> bool:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, priority.thread_nice() + 1)
        try:
            os.setpriority(os.PRIO_PROCESS, tid, priority.thread_nice() - 1)
            return True
        except OSError:
            return False

    return bool(in_thread(body))


def test_raise_lowered_threads_and_lowered_work() -> None:
    """KILL/PAUSE JOB raise the background threads (where the OS allows it);
    work handed over through `lowered` lowers its thread again."""
    priority.set_background_nice(11)
    allowed = may_raise_priority()
    lowered_now = threading.Event()
    go_on = threading.Event()
    seen: list[int] = []

    def job() -> None:
        priority.lower_this_thread()
        lowered_now.set()
        go_on.wait(10)
        seen.append(priority.thread_nice())  # after the raise
        seen.append(priority.lowered(priority.thread_nice)())  # next piece of work

    t = threading.Thread(target=job)
    t.start()
    assert lowered_now.wait(10)
    raised = priority.raise_lowered_threads()
    go_on.set()
    t.join()
    main = priority.thread_nice()
    if allowed:
        assert raised >= 1 and seen == [main, 11]
    else:  # nothing changes where the OS refuses
        assert raised == 0 and seen == [11, 11]
    assert priority.thread_nice() == main  # a normal thread is never touched


def schedstat_now(pid: int) -> tuple[int, int, int]:
    """(ns on a CPU, ns waiting, threads) of `pid`, each thread's file opened
    and read afresh: what SchedClock must agree with."""
    import os

    ran = waited = count = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, queued = f.read().split()[:2]
        except OSError:
            continue
        ran, waited, count = ran + int(on_cpu), waited + int(queued), count + 1
    return ran, waited, count


def test_a_sched_clock_reads_each_thread_again_without_opening_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A job process's threads are sampled every 0.1 s from a server thread,
    and every system call there lets the event loop's GIL go: the files stay
    open, each sample lists the threads and reads each file once. Its sums
    are what the files say (a child spinning in three threads, so the figures
    move between reads), and a thread that ended is closed and counted for
    nothing."""
    import os
    import subprocess
    import sys
    import time

    code = ("import threading, time, sys\n"
            "stop = threading.Event()\n"
            "def spin():\n"
            "    while not stop.is_set(): sum(range(1000))\n"
            "ts = [threading.Thread(target=spin) for _ in range(2)]\n"
            "[t.start() for t in ts]\n"
            "print('up', flush=True); sys.stdin.readline(); stop.set()\n"
            "[t.join() for t in ts]\n"
            "print('two gone', flush=True); sys.stdin.readline()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    clock = priority.SchedClock(child.pid)
    try:
        assert child.stdout.readline() == "up\n"
        time.sleep(0.05)
        before = schedstat_now(child.pid)
        first = clock.sample()
        after = schedstat_now(child.pid)
        assert before[2] == after[2] >= 3
        assert before[0] <= first[0] <= after[0] and before[1] <= first[1] <= after[1]
        assert len(clock._fds) == after[2]

        calls: list[str] = []
        real_open, real_listdir = os.open, os.listdir
        monkeypatch.setattr(os, "open", lambda path, *a, **k: (
            calls.append(f"open {path}"), real_open(path, *a, **k))[1])
        monkeypatch.setattr(priority.os, "listdir", lambda path: (
            calls.append(f"listdir {path}"), real_listdir(path))[1])
        while (before := schedstat_now(child.pid))[0] <= first[0]:  # the spinners moved on
            time.sleep(0.01)
        calls.clear()
        second = clock.sample()
        assert calls == []  # each file read again: none opened, the threads not listed
        after = schedstat_now(child.pid)
        assert before[0] <= second[0] <= after[0] and second[0] > first[0]

        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "two gone\n"
        deadline = time.monotonic() + 10
        while schedstat_now(child.pid)[2] != after[2] - 2:  # joined; the tasks end just after
            assert time.monotonic() < deadline
            time.sleep(0.01)
        third = clock.sample()
        assert len(clock._fds) == after[2] - 2  # the ended threads' files closed
        assert third[0] <= schedstat_now(child.pid)[0]
    finally:
        clock.close()
        child.kill()
        child.wait()
    assert clock._fds == {}
    assert clock.sample() == (0, 0)  # a process that ended: nothing, and no error


def test_a_breather_pauses_after_each_stretch_of_work_and_never_on_the_main_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Breather gives the GIL away (a short sleep) once the steps since its
    last pause took its `every`, and only off the main thread: the event
    loop's own work never waits for it."""
    import time

    pauses: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(priority.time, "sleep", lambda s: (pauses.append(s), real_sleep(s)))

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def loop(every: float, step: float, steps: int) -> None:
        breathe = priority.Breather(every)
        for _ in range(steps):
            busy(step)
            breathe()

    worker = threading.Thread(target=loop, args=(0.0005, 0.001, 10))
    worker.start()
    worker.join()
    assert pauses == [priority.BREATHE_PAUSE] * 10  # each 1 ms step passed 0.5 ms
    pauses.clear()
    worker = threading.Thread(target=loop, args=(10.0, 0.0, 100))
    worker.start()
    worker.join()
    assert pauses == []  # no stretch long enough
    loop(0.0005, 0.001, 10)  # the main thread
    assert pauses == []
