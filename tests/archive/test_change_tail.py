"""The change log's unshipped end in memory (storage/archive/changes.py `_Ns.tail`):
every read gives what RocksDB holds, across row and DDL commits, trims,
restarts, failed commits and a tail over its size."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from storage.archive import changes
from storage.archive.changes import CREATE, MAX_LSN, ChangeLog


def _row(log: ChangeLog, catalog: Catalog, ns: str, data: bytes, fail: str = "") -> None:
    """A row commit through `commit_rows`; `fail`: "before" raises before the
    batch is written, "after" once it is."""
    def write(batch: Any) -> None:
        if fail == "before":
            raise OSError("disk gone")
        batch.commit()
        if fail == "after":
            raise OSError("the mirror's update failed")
    batch = catalog.batch()
    log.commit_rows(ns, batch, "t", data, write)


def _ddl(log: ChangeLog, catalog: Catalog, ns: str, fail: bool = False) -> None:
    batch = catalog.batch()
    with log.committing(ns) as rec:
        assert rec is not None
        rec.add(batch, CREATE, "t", b'{"ddl":1}')
        batch.commit()
        if fail:
            raise OSError("after the write")


def _same(log: ChangeLog, ns: str, rng: random.Random, lsns: list[int]) -> None:
    """Reads of random ranges and sizes equal RocksDB's."""
    bounds = [0, *lsns, MAX_LSN]
    for _ in range(40):
        after = rng.choice(bounds)
        upto = rng.choice([b for b in bounds if b >= after])
        max_bytes = rng.choice([None, 0, 1, 40, 100, 400, 1 << 20])
        got = log._entries(ns, after, upto, max_bytes)
        assert got == log._stored(ns, after, upto, max_bytes), (after, upto, max_bytes)


def _trim(log: ChangeLog, catalog: Catalog, ns: str, upto: int) -> None:
    batch = catalog.batch()
    log.trim(ns, upto, batch)
    batch.commit()
    log.shipped(ns, upto)
    first = log._first_entry(ns, upto)
    assert log.pending_since(ns) == (None if first is None else first.at_us)


def test_reads_from_the_tail_equal_rocksdb_through_writes_trims_and_failures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "TAIL_BYTES", 3_000)  # the cap is crossed too
    rng = random.Random(7)
    catalog = Catalog(tmp_path / "catalog")
    log = ChangeLog(catalog)
    try:
        log.activate("app")
        log.activate("ap")  # a namespace whose keys sort right before
        dropped = restarted = 0
        for step in range(300):
            ns = "app" if rng.random() < 0.8 else "ap"
            roll = rng.random()
            if roll < 0.6:
                _row(log, catalog, ns, rng.randbytes(rng.randint(1, 120)))
            elif roll < 0.7:
                _ddl(log, catalog, ns)
            elif roll < 0.75:
                with pytest.raises(OSError):
                    _row(log, catalog, ns, b"lost", fail=rng.choice(["before", "after"]))
            elif roll < 0.78:
                with pytest.raises(OSError):
                    _ddl(log, catalog, ns, fail=True)
            elif roll < 0.9:
                stored = [c.lsn for c in log.read(ns, 0, MAX_LSN)]
                if stored:
                    _trim(log, catalog, ns, rng.choice(stored))
            if log._ns[ns].tail is None:
                dropped += 1
            if step % 100 == 99:  # a restart: a new log over the same catalog
                log = ChangeLog(catalog)
                log.activate("app")
                log.activate("ap")
                restarted += 1
            lsns = [c.lsn for c in log.read(ns, 0, MAX_LSN)]
            _same(log, ns, rng, lsns)
        assert dropped and restarted == 3
        for ns in ("app", "ap"):
            _trim(log, catalog, ns, MAX_LSN)
            assert log._entries(ns, 0, MAX_LSN) == [] and log._ns[ns].tail == []
    finally:
        catalog.close()


def test_the_cycle_reads_the_tail_not_rocksdb(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(tmp_path / "catalog")
    log = ChangeLog(catalog)
    try:
        log.activate("app")
        for i in range(20):
            _row(log, catalog, "app", b"before %d" % i)
        log = ChangeLog(catalog)  # a restart: those 20 are in RocksDB only
        log.activate("app")
        for i in range(30):
            _row(log, catalog, "app", b"after %d" % i)
        every = log.read("app", 0, MAX_LSN)
        assert [c.data for c in every] == ([b"before %d" % i for i in range(20)]
                                           + [b"after %d" % i for i in range(30)])
        assert len(log._ns["app"].tail or []) == 30
        _trim(log, catalog, "app", every[19].lsn)  # what was there before is shipped
        assert log.pending_since("app") == every[20].at_us

        def no_rocksdb(*args: Any, **kwargs: Any) -> list[bytes]:
            raise AssertionError("read RocksDB")
        monkeypatch.setattr(log, "_stored", no_rocksdb)
        monkeypatch.setattr(log, "_first_entry", no_rocksdb)
        hi, _ = log.mark("app")
        raw = log.read_raw("app", every[19].lsn, hi)
        assert raw is not None and raw.last_lsn == every[-1].lsn == hi
        assert [changes._decoder.decode(e) for e in raw.entries] == every[20:]
        log.shipped("app", every[35].lsn)
        assert log.pending_since("app") == every[36].at_us
        assert log._ns["app"].tail_lsns == [c.lsn for c in every[36:]]
        log.deactivate("app")
        assert log._ns["app"].tail is None
    finally:
        catalog.close()


def test_a_row_commit_that_failed_after_its_write_is_read_from_rocksdb(
        tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog")
    log = ChangeLog(catalog)
    try:
        log.activate("app")
        _row(log, catalog, "app", b"one")
        with pytest.raises(OSError):
            _row(log, catalog, "app", b"two", fail="after")
        _row(log, catalog, "app", b"three")
        assert log._ns["app"].tail is None  # the tail might miss "two": dropped
        assert [c.data for c in log.read("app", 0, MAX_LSN)] == [b"one", b"two", b"three"]
        first = log.read("app", 0, MAX_LSN)[0]
        _trim(log, catalog, "app", first.lsn)  # shipped: the tail starts again
        assert log._ns["app"].tail == []
        _row(log, catalog, "app", b"four")
        assert [c.data for c in log.read("app", first.lsn, MAX_LSN)] == [
            b"two", b"three", b"four"]
        assert len(log._ns["app"].tail or []) == 1
    finally:
        catalog.close()


@pytest.fixture
def clocked(tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[int], Catalog, ChangeLog]]:
    """(clock, catalog, log): the log of an archived `app` on a clock (µs)
    the test sets."""
    clock = [1_700_000_000_000_000]
    monkeypatch.setattr(changes, "now_us", lambda: clock[0])
    catalog = Catalog(tmp_path / "catalog")
    log = ChangeLog(catalog)
    log.activate("app")
    try:
        yield clock, catalog, log
    finally:
        catalog.close()


def test_lag_is_zero_only_when_nothing_waits(
        clocked: tuple[list[int], Catalog, ChangeLog]) -> None:
    """`lag_ms` rounds up: a change committed this very millisecond waits 1 ms,
    so a client polling for lag 0 never takes "just committed" for "shipped"."""
    clock, catalog, log = clocked
    assert log.lag_ms("app") == 0
    _row(log, catalog, "app", b"one")
    at = log.pending_since("app")
    assert at is not None
    for waited_us, lag in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (2500, 3)]:
        clock[0] = at + waited_us
        assert log.lag_ms("app") == lag, waited_us
    _trim(log, catalog, "app", MAX_LSN)
    assert log.lag_ms("app") == 0


def test_marks_are_whole_milliseconds(clocked: tuple[list[int], Catalog, ChangeLog]) -> None:
    """The archiver's marks (a segment's through time, archived_until, a
    restore point's end) are whole milliseconds, as they are shown: a
    restore as of the shown end holds a change committed in that last
    millisecond (at a time like …816.200 shown as …816, it did not)."""
    clock, catalog, log = clocked
    clock[0] = 1_700_000_000_816_200
    _row(log, catalog, "app", b"one")
    committed = log.read("app", 0, MAX_LSN)[-1]
    clock[0] += 100  # still inside that millisecond
    lsn, at = log.mark("app")
    assert at % 1000 == 0 and at >= committed.at_us and lsn == committed.lsn
    _row(log, catalog, "app", b"after the mark")
    assert log.read("app", 0, MAX_LSN)[-1].at_us > at  # stamped after it
    clock[0] += 333
    _, final = log.deactivate("app")
    assert final % 1000 == 0 and final > at


def test_no_commit_is_stamped_past_the_clock_after_a_mark(tmp_path: Path) -> None:
    """A mark (an archive cycle's, a BACKUP's cut, STOP's) rounded its time
    up to the next millisecond and stamped the next commits after it: up
    to 1 ms past the wall clock, so a write answered at T was missing from
    a restore as of T + 1 µs. Now a mark in a millisecond nothing committed
    in yet is that millisecond, and one after a commit in it waits for the
    next; a commit is never stamped later than the clock when it returns.
    On the real clock: each round commits, marks and commits again."""
    catalog = Catalog(tmp_path / "catalog")
    try:
        log = ChangeLog(catalog)
        log.activate("app")
        for i in range(200):
            _row(log, catalog, "app", b"before %d" % i)
            before = log.read("app", 0, MAX_LSN)[-1]
            lsn, at = log.mark("app")
            assert at % 1000 == 0 and at >= before.at_us and lsn == before.lsn
            _row(log, catalog, "app", b"after %d" % i)
            returned = changes.now_us()
            after = log.read("app", 0, MAX_LSN)[-1]
            assert at < after.at_us <= returned, (i, at, after.at_us, returned)
            _trim(log, catalog, "app", MAX_LSN)
        _, final = log.deactivate("app")
        assert final % 1000 == 0 and final <= changes.now_us()
    finally:
        catalog.close()
