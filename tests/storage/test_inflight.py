"""The pool behind BACKUP and RESTORE (storage/inflight.py): items start in
order with at most `workers` at once, the first failure stops the rest and is
the error raised, and nothing is still running when run() returns or raises."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from catalog.errors import BackupInvalid, Cancelled
from storage.inflight import InFlight, workers_for


def test_bounded_and_in_order() -> None:
    flight = InFlight(3)
    started: list[int] = []
    running, peak = 0, 0
    mutex = threading.Lock()

    def one(index: int, item: str) -> None:
        nonlocal running, peak
        with mutex:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with mutex:
            running -= 1

    flight.run([f"f{i}" for i in range(12)], one, started.append)
    assert started == list(range(12)) and peak == 3 and running == 0


def test_first_failure_stops_the_rest_and_is_raised() -> None:
    flight = InFlight(4)
    ended: list[int] = []
    started: list[int] = []

    def one(index: int, _: int) -> None:
        started.append(index)
        if index == 1:
            time.sleep(0.02)
            raise BackupInvalid("file 1 changed")
        while not flight.stopping:  # a long copy that checks for a stop
            time.sleep(0.005)
        ended.append(index)
        raise Cancelled("stopped")

    with pytest.raises(BackupInvalid, match="file 1 changed"):
        flight.run(list(range(100)), one)
    assert flight.stopping
    assert len(started) <= 4 and sorted(ended) == [i for i in started if i != 1]


def test_a_cancel_before_an_item_waits_for_those_in_flight() -> None:
    flight = InFlight(2)
    finished: list[int] = []

    def one(index: int, _: int) -> None:
        while not flight.stopping:
            time.sleep(0.005)
        finished.append(index)

    def before(index: int) -> None:
        if index == 2:
            raise Cancelled("KILL JOB")

    with pytest.raises(Cancelled):
        flight.run([0, 1, 2, 3], one, before)
    assert sorted(finished) == [0, 1]


def test_one_worker_runs_inline() -> None:
    seen: list[str] = []
    InFlight(1).run(["a", "b"], lambda _, item: seen.append(threading.current_thread().name))
    assert seen == [threading.current_thread().name] * 2


def test_workers_per_target_kind() -> None:
    assert workers_for("archive") == 1
    assert 2 <= workers_for("local") <= workers_for("s3") <= 16


def test_drain_from_before_waits_for_everything_in_flight() -> None:
    """What a pause relies on: after `drain()` in `before`, nothing is moving."""
    flight = InFlight(4)
    finished: set[int] = set()
    seen_at_drain: list[set[int]] = []

    def one(index: int, item: str) -> None:
        time.sleep(0.05)
        finished.add(index)

    def before(index: int) -> None:
        if index == 3:
            flight.drain()
            seen_at_drain.append(set(finished))

    flight.run(list("abcdef"), one, before)
    assert seen_at_drain == [{0, 1, 2}]  # all three in flight had finished
    assert finished == set(range(6))


def test_items_that_move_nothing_run_here_and_start_no_pool_for_one_mover() -> None:
    """A BACKUP after a small change stores one file of seven, the others
    stored already: it started a pool of seven threads for them. Items
    `here` says move nothing run on the caller's thread in their turn; with
    at most one item left to move no thread starts, and with more the pool
    is sized to them, every item still starting in order."""
    main = threading.get_ident()
    started: list[int] = []
    threads: dict[int, int] = {}
    pools: list[int] = []
    real = ThreadPoolExecutor.__init__

    def counted(self: ThreadPoolExecutor, workers: int, *args: object, **kw: object) -> None:
        pools.append(workers)
        real(self, workers, *args, **kw)  # type: ignore[arg-type]

    def one(index: int, _: str) -> None:
        threads[index] = threading.get_ident()

    stored = {0, 1, 2, 4, 5, 6}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ThreadPoolExecutor, "__init__", counted)
        InFlight(8).run([f"f{i}" for i in range(7)], one, started.append, lambda i: i in stored)
        assert pools == [] and started == list(range(7))
        assert set(threads.values()) == {main}
        started.clear()
        threads.clear()
        stored = {0, 2, 4, 6}
        InFlight(8).run([f"f{i}" for i in range(7)], one, started.append, lambda i: i in stored)
    assert pools == [3] and started == list(range(7))
    assert {i for i, t in threads.items() if t == main} == stored
