"""The change log's bookkeeping after a trim (storage/archive/changes.py)."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

import pytest

from catalog import Catalog
from storage.archive.changes import MAX_LSN, ROWS, ChangeLog


def _log(tmp_path: Path, n: int) -> tuple[Catalog, ChangeLog, list[tuple[int, int]]]:
    catalog = Catalog(tmp_path / "catalog")
    log = ChangeLog(catalog)
    log.activate("app")
    log.activate("other")
    done = []
    for i in range(n):
        for ns in ("app", "other"):
            batch = catalog.batch()
            with log.committing(ns) as rec:
                assert rec is not None
                change = rec.add(batch, ROWS, "t", b"rows %d" % i)
                batch.commit()
            if ns == "app":
                done.append((change.lsn, change.at_us))
    return catalog, log, done


def test_shipped_finds_the_oldest_change_left(tmp_path: Path) -> None:
    catalog, log, done = _log(tmp_path, 40)
    try:
        assert log.pending_since("app") == done[0][1]
        for cut in (9, 25, 38):  # trims of growing ranges, as cycles make them
            batch = catalog.batch()
            log.trim("app", done[cut][0], batch)
            batch.commit()
            log.shipped("app", done[cut][0])
            assert log.pending_since("app") == done[cut + 1][1]
            left = log.read("app", 0, MAX_LSN)
            assert [c.lsn for c in left] == [lsn for lsn, _ in done[cut + 1:]]
        batch = catalog.batch()
        log.trim("app", MAX_LSN, batch)
        batch.commit()
        log.shipped("app", MAX_LSN)
        assert log.pending_since("app") is None and log.read("app", 0, MAX_LSN) == []
        assert len(log.read("other", 0, MAX_LSN)) == 40  # another namespace's log is its own
        log.shipped("other", 0)  # 0: from the log's head
        assert log.pending_since("other") is not None
    finally:
        catalog.close()


def test_activation_finds_the_newest_and_oldest_changes_left(tmp_path: Path) -> None:
    """What a restart (`activate` on a fresh ChangeLog over the same catalog)
    finds: the newest change of each namespace by a seek from the log's end,
    next to namespaces whose keys sort just before and after it ("ap", "app"
    + anything longer), and the oldest change after what was shipped."""
    catalog, log, done = _log(tmp_path, 30)
    try:
        for ns in ("ap", "appx"):  # neighbours of "app" in key order
            batch = catalog.batch()
            log.activate(ns)
            with log.committing(ns) as rec:
                assert rec is not None
                rec.add(batch, ROWS, "t", b"neighbour")
                batch.commit()
        newest_other = log.read("other", 0, MAX_LSN)[-1]
        batch = catalog.batch()
        log.trim("app", done[11][0], batch)
        batch.commit()
        again = ChangeLog(catalog)
        assert again._last_entry("app") is not None
        assert again._last_entry("app").lsn == done[-1][0]  # type: ignore[union-attr]
        assert again._last_entry("other") == newest_other
        assert again._last_entry("nothing") is None
        again.activate("app", 0, done[11][0])
        assert again.pending_since("app") == done[12][1]
        mark = again.mark("app")
        assert mark[0] == done[-1][0] and mark[1] >= done[-1][1]
        batch = catalog.batch()
        log.trim("app", MAX_LSN, batch)
        batch.commit()
        assert ChangeLog(catalog)._last_entry("app") is None  # all trimmed
        fresh = ChangeLog(catalog)
        fresh.activate("app", 0, done[-1][0])
        assert fresh.pending_since("app") is None
    finally:
        catalog.close()


def test_a_commit_that_fails_moves_nothing_on_and_releases_the_lock(tmp_path: Path) -> None:
    """`committing`: a body that raises (the batch was not written) leaves the
    namespace's newest lsn and oldest waiting change as they were, and the
    commit lock free; a namespace not archived is not locked at all."""
    catalog, log, done = _log(tmp_path, 3)
    try:
        before = (log.mark("app")[0], log.pending_since("app"))
        with pytest.raises(RuntimeError), log.committing("app") as rec:
            assert rec is not None
            rec.add(catalog.batch(), ROWS, "t", b"never written")
            raise RuntimeError("the batch failed")
        assert (log.mark("app")[0], log.pending_since("app")) == before == (done[-1][0], done[0][1])
        with log.holding("app") as ns:
            assert ns.lock.locked()
        assert not log._state("app").lock.locked()
    finally:
        catalog.close()


def test_a_row_commit_logs_what_a_recorder_logs(tmp_path: Path) -> None:
    """`commit_rows`, the row writes' path: while archived, the batch holds
    one entry (kind rows, the table, the data, the next lsn, a later time) and
    is written under the commit lock; the namespace's newest lsn and oldest
    waiting change move on only once the write succeeded. A stream table's
    rows (None) and a namespace not archived write the batch alone, the
    latter without the lock."""
    catalog, log, done = _log(tmp_path, 2)
    try:
        seen: list[bool] = []

        def write(batch: object, fail: bool = False) -> None:
            seen.append(log._state("app").lock.locked())
            if fail:
                raise RuntimeError("the batch failed")
            batch.commit()  # type: ignore[attr-defined]

        before = (log.mark("app")[0], log.pending_since("app"))
        with pytest.raises(RuntimeError):
            log.commit_rows("app", catalog.batch(), "t", b"never written",
                            lambda b: write(b, fail=True))
        assert (log.mark("app")[0], log.pending_since("app")) == before
        assert not log._state("app").lock.locked()
        log.commit_rows("app", catalog.batch(), "t2", b"the rows", write)
        got = log.read("app", done[-1][0], MAX_LSN)
        assert len(got) == 1
        change = got[0]
        assert (change.kind, change.table, change.data) == (ROWS, "t2", b"the rows")
        assert change.lsn > done[-1][0] and change.at_us > done[-1][1]
        assert log.mark("app")[0] == change.lsn
        log.commit_rows("app", catalog.batch(), "s", None, write)  # a stream table
        assert [c.lsn for c in log.read("app", 0, MAX_LSN)][-1] == change.lsn
        assert seen == [True, True, True]
        batch = catalog.batch()
        batch.put_raw("changes", b"marker", b"x")
        log.commit_rows("quiet", batch, "t", b"rows", write)
        assert seen[-1] is False and not log._state("quiet").lock.locked()
        assert catalog.get_raw("changes", b"marker") == b"x"
        assert log.read("quiet", 0, MAX_LSN) == []
    finally:
        catalog.close()


def test_reads_stop_at_the_bounds_and_at_the_size(tmp_path: Path) -> None:
    """A read takes exactly the entries with after < lsn <= upto of its own
    namespace (RocksDB stops at the upper bound; more entries than one bulk
    run of the read), and a size limit ends it with the entry that reaches
    it (at least one)."""
    catalog, log, done = _log(tmp_path, 150)
    try:
        lsns = [lsn for lsn, _ in done]
        for lo, hi in ((0, 149), (3, 70), (64, 65), (10, 10), (0, 0), (149, 149)):
            after = lsns[lo - 1] if lo else 0
            want = lsns[lo:hi + 1] if hi >= lo else []
            got = log.read("app", after, lsns[hi])
            assert [c.lsn for c in got] == [x for x in want if x > after]
            raw = log.read_raw("app", after, lsns[hi])
            assert (raw.entries if raw else []) == [log.catalog.get_raw(
                "changes", k) for k in _keys("app", [x for x in want if x > after])]
        assert log.read_raw("app", lsns[-1], MAX_LSN) is None
        # upto between two of app's lsns (another namespace's lsn): nothing past it
        got = log.read("app", 0, lsns[99] + 1)
        assert [c.lsn for c in got] == lsns[:100]
        every = log.read_raw("app", 0, MAX_LSN)
        assert every is not None and len(every.entries) == 150
        sizes = list(accumulate(map(len, every.entries)))
        for limit in (1, sizes[0], sizes[0] + 1, sizes[69], sizes[69] + 1, sizes[-1] + 1):
            count = next((k + 1 for k, s in enumerate(sizes) if s >= limit), 150)
            raw = log.read_raw("app", 0, MAX_LSN, limit)
            assert raw is not None and raw.entries == every.entries[:count]
            assert raw.last_lsn == lsns[count - 1]
            assert [c.lsn for c in log.read("app", 0, MAX_LSN, limit)] == lsns[:count]
    finally:
        catalog.close()


def _keys(ns: str, lsns: list[int]) -> list[bytes]:
    from storage.archive.changes import key_of
    return [key_of(ns, x) for x in lsns]
