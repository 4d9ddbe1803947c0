"""RocksDB's log files and memtables stay bounded while tables come and go.

A Cairn flush writes a table's buffer family out (`flush_family`); the log
files stayed alive as long as any other family (jobs, tables, ...) held an
unflushed write from their time: 300 INSERT+FLUSH cycles of 256 KB rows kept
601 log files (153 MB) in catalog/ until a restart, every byte ever written
(rows of dropped tables too). And a STREAM table's evicted rows stayed in its
memtable (~64 MB per table, whatever `max_buffer` said): the catalog bounds
the log files' total and every family's memtables together."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from catalog import Catalog, Job, store
from catalog.ids import new_id

ROW = b"x" * 262144


def logs(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.log"))


def test_log_files_do_not_pile_up_behind_the_families_a_flush_skips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MAX_TOTAL_WAL_BYTES", 4 << 20)
    cat = Catalog(tmp_path / "cat")
    for i in range(60):
        cat.put(Job(new_id("job"), "flush"))  # a metadata family written beside the table
        b = cat.batch()
        b.put_raw("buf_t", i.to_bytes(8, "big"), ROW)
        b.commit()
        b = cat.batch()
        b.delete_raw("buf_t", i.to_bytes(8, "big"))
        b.commit()
        cat.flush_family("buf_t")  # what a Cairn flush does: that family only
    # 60 cycles wrote 15 MB; the logs hold at most about the bound
    assert logs(tmp_path / "cat") <= 8 << 20, logs(tmp_path / "cat")
    cat.close()


def test_memtables_of_every_family_share_one_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MEMTABLE_BYTES", 4 << 20)
    cat = Catalog(tmp_path / "cat")
    for t in range(4):  # four STREAM tables evicting their oldest rows
        for i in range(24):
            b = cat.batch()
            b.put_raw(f"s{t}", i.to_bytes(8, "big"), ROW)
            if i >= 5:
                b.delete_raw(f"s{t}", (i - 5).to_bytes(8, "big"))
            b.commit()
    # 24 MB written, 6 MB per family. RocksDB looks at the bound when a write
    # comes, and turns one family's memtable over per write, to a flush on its
    # own threads; a family whose last flush is still running is passed over.
    # On a loaded machine the flushes lag, the last writes find nothing to
    # turn over, and 10 MB stay held until a later write (a job's record: a
    # server always writes again). So the test writes a small record until
    # the bound holds; without the bound no write turns anything over.
    deadline = time.monotonic() + 20
    while (held := cat.property_totals(["rocksdb.cur-size-all-mem-tables"])[
            "rocksdb.cur-size-all-mem-tables"]) > 8 << 20 and time.monotonic() < deadline:
        cat.put(Job(new_id("job"), "flush"))
        time.sleep(0.05)
    assert held <= 8 << 20, held
    cat.close()


def test_rocksdbs_own_info_logs_do_not_pile_up_one_a_start(tmp_path: Path) -> None:
    """RocksDB keeps its info log of every open as `LOG.old.<time>` (0.13-0.65
    MB each under a crash campaign), up to 1,000 by its default: a server
    restarted in a loop (a crash, a supervisor) filled catalog/ with them,
    one more a start. Now a few are kept."""
    for _ in range(store.INFO_LOGS_KEPT + 4):
        cat = Catalog(tmp_path / "cat")
        cat.put(Job(new_id("job"), "flush"))
        cat.close()
    kept = list((tmp_path / "cat").glob("LOG*"))
    assert len(kept) <= store.INFO_LOGS_KEPT, sorted(p.name for p in kept)
