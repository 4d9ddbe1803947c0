"""The change log's bookkeeping after a trim (storage/archive/changes.py)."""

from __future__ import annotations

from pathlib import Path

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
