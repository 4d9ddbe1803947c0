"""Every table's write buffer in one RocksDB family (storage/bufstore.py), and
the move of a data directory in the old layout (a family a table, `buf_<uid>`)
into it when it is opened."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from catalog import Catalog, Meta, Namespace
from catalog.diskerrors import DataDirUnavailable
from catalog.errors import CannotStart
from storage import bufstore
from storage.buffer import seq_key
from storage.engine import Engine

from .conftest import Cfg, col, open_engine, runner

ROWS = {"a": [1, 2, 3], "b": [10, 20]}


def _old_layout(data: Path) -> dict[str, str]:
    """A data directory as releases before 2026-12-06 left it: tables `a`
    (3 rows in 3 statements) and `b` (2 rows), each table's buffer in a family
    of its own, keyed by sequence key alone; plus the family of a table that
    was dropped. The tables' uids by name."""
    catalog, eng = open_engine(data)
    catalog.put(Namespace("app"))
    run = runner(eng)
    uids = {}
    for name, values in ROWS.items():
        uids[name] = eng.create_table("app", name, "shared", [col("k", primary_key=True)]).uid
        for v in values:
            run(f"INSERT INTO app.{name} VALUES ({v})")
    eng.close()
    for uid in uids.values():
        entries = list(bufstore.entries(catalog, uid))
        batch = catalog.batch()
        for key, value in entries:
            batch.put_raw(bufstore.LEGACY + uid, key, value)
        start = bufstore.prefix(uid)
        batch.delete_range_raw(bufstore.FAMILY, start, start + b"\xff")
        batch.commit()
    catalog.batch().put_raw(bufstore.LEGACY + "tbl-gone", seq_key(1), b"rows").commit()
    catalog.close()
    return uids


def test_an_old_layout_is_moved_into_one_family_when_opened(tmp_path: Path) -> None:
    data = tmp_path / "d"
    uids = _old_layout(data)
    catalog = Catalog(data / "catalog")
    assert sorted(f for f in catalog.families() if f.startswith(bufstore.LEGACY)) == sorted(
        [bufstore.LEGACY + u for u in uids.values()] + [bufstore.LEGACY + "tbl-gone"])
    catalog.close()
    catalog, eng = open_engine(data)
    assert [f for f in catalog.families() if f.startswith(bufstore.LEGACY)] == []
    assert {n: len(list(bufstore.entries(catalog, u))) for n, u in uids.items()} == {
        n: len(v) for n, v in ROWS.items()}
    run = runner(eng)
    for name, values in ROWS.items():
        assert [r["k"] for r in run(f"SELECT k FROM app.{name} ORDER BY k")] == values
    run("INSERT INTO app.a VALUES (4)")  # after the moved entries, in order
    assert eng.flush_table("app", "a")["rows"] == 4
    assert list(bufstore.entries(catalog, uids["a"])) == []
    assert [r["k"] for r in run("SELECT k FROM app.a ORDER BY k")] == [1, 2, 3, 4]
    eng.close()
    catalog.close()


def test_a_move_cut_short_runs_again_to_the_same_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after a table's entries were copied (in batches) but before its
    old family was dropped: the next start copies them again, over themselves."""
    data = tmp_path / "d"
    uids = _old_layout(data)
    monkeypatch.setattr(bufstore, "MOVE_BYTES", 1)  # a batch an entry
    real_drop = Catalog.drop_family

    def crash(self: Catalog, name: str) -> None:
        raise OSError("killed")

    monkeypatch.setattr(Catalog, "drop_family", crash)
    catalog = Catalog(data / "catalog")
    with pytest.raises(OSError, match="killed"):
        Engine(catalog, data, Cfg())
    assert len(list(bufstore.entries(catalog, uids["a"]))) == 3  # copied, not yet dropped
    catalog.close()
    monkeypatch.setattr(Catalog, "drop_family", real_drop)
    catalog, eng = open_engine(data)
    assert [f for f in catalog.families() if f.startswith(bufstore.LEGACY)] == []
    run = runner(eng)
    for name, values in ROWS.items():
        assert [r["k"] for r in run(f"SELECT k FROM app.{name} ORDER BY k")] == values
        assert len(list(bufstore.entries(catalog, uids[name]))) == len(values)
    eng.close()
    catalog.close()


def test_uids_and_sweep_step_table_by_table(tmp_path: Path) -> None:
    catalog, eng = open_engine(tmp_path / "d")
    catalog.put(Namespace("app"))
    run = runner(eng)
    kept = eng.create_table("app", "kept", "shared", [col("k")]).uid
    run("INSERT INTO app.kept VALUES (1)")
    run("INSERT INTO app.kept VALUES (2)")
    batch = catalog.batch()
    for uid in ("tbl-aaa", "tbl-zzz"):  # tables a crash left behind
        for seq in (1, 2, 3):
            batch.put_raw(bufstore.FAMILY, bufstore.prefix(uid) + seq_key(seq), b"x")
    batch.commit()
    assert sorted(bufstore.uids(catalog)) == sorted(["tbl-aaa", "tbl-zzz", kept])
    assert bufstore.sweep(catalog, {kept}) == 2
    assert list(bufstore.uids(catalog)) == [kept]
    assert [r["k"] for r in run("SELECT k FROM app.kept ORDER BY k")] == [1, 2]
    eng.close()
    catalog.close()


def _sst_bytes(catalog: Catalog) -> int:
    fam = catalog.family(bufstore.FAMILY)
    return int(fam.property_int_value("rocksdb.total-sst-files-size") or 0)


def test_a_drop_cut_short_before_its_compaction_is_compacted_at_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between a DROP's range tombstones and its compaction left the
    dropped rows on disk across restarts, until some flush compacted."""
    data = tmp_path / "d"
    catalog, eng = open_engine(data)
    catalog.put(Namespace("app"))
    run = runner(eng)
    eng.create_table("app", "big", "shared", [col("k", primary_key=True), col("v", "TEXT")])
    eng.create_table("app", "kept", "shared", [col("k", primary_key=True)])
    for i in range(8):  # 8 MB that do not compress
        run("INSERT INTO app.big VALUES " + ", ".join(
            f"({i * 1000 + j}, '{os.urandom(500).hex()}')" for j in range(1000)))
    run("INSERT INTO app.kept VALUES (1), (2)")
    catalog.flush_family(bufstore.FAMILY)
    assert _sst_bytes(catalog) > 7 << 20

    def crash(*args: object, **kwargs: object) -> bool:
        raise OSError("killed")

    monkeypatch.setattr(catalog, "compact_deleted", crash)
    with pytest.raises(OSError, match="killed"):
        eng.drop_table("app", "big")
    monkeypatch.undo()
    eng.close()
    catalog.close()
    catalog, eng = open_engine(data)
    assert _sst_bytes(catalog) > 7 << 20  # still there when the server starts
    assert eng.recover()["buffers_dropped"] == 0  # no table's entries left: nothing to sweep
    assert _sst_bytes(catalog) < 1 << 20
    assert [r["k"] for r in runner(eng)("SELECT k FROM app.kept ORDER BY k")] == [1, 2]
    eng.close()
    catalog.close()


def test_the_move_syncs_the_log_before_any_old_family_goes_and_marks_the_format(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies were ordinary writes (the log not synced) and each family's
    drop is synced at once: a power loss right after the first drop lost rows
    that were on disk before the upgrade."""
    data = tmp_path / "d"
    _old_layout(data)
    calls: list[str] = []
    real_sync, real_drop = Catalog.flush_wal, Catalog.drop_family

    def sync(self: Catalog) -> None:
        calls.append("sync")
        real_sync(self)

    def drop(self: Catalog, name: str) -> None:
        calls.append("drop")
        real_drop(self, name)

    monkeypatch.setattr(Catalog, "flush_wal", sync)
    monkeypatch.setattr(Catalog, "drop_family", drop)
    catalog, eng = open_engine(data)
    assert calls == ["sync", "drop", "drop", "drop"]
    assert catalog.get(Meta, "data_format") == Meta("data_format", bufstore.DATA_FORMAT)
    eng.close()
    catalog.close()


def test_a_data_directory_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    catalog, eng = open_engine(data)
    eng.close()
    catalog.put(Meta("data_format", bufstore.DATA_FORMAT + 1))
    with pytest.raises(CannotStart, match=r"written by a newer release of Cairn \(data format 3"):
        Engine(catalog, data, Cfg())
    catalog.close()


def test_a_start_up_compaction_the_disk_refuses_does_not_stop_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    catalog, eng = open_engine(tmp_path / "d")

    def refused(*args: object, **kwargs: object) -> bool:
        raise DataDirUnavailable("no space left on the data directory")

    monkeypatch.setattr(catalog, "compact_deleted", refused)
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        assert eng.recover()["buffers_dropped"] == 0
    assert "not compacted at start" in caplog.text and "no space left" in caplog.text
    eng.close()
    catalog.close()


@pytest.mark.parametrize("size", [10, 600_000])
def test_flushes_do_not_leave_a_file_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Each flush's range tombstone was an SST file of its own, moved down the
    levels whole and never merged, and RocksDB keeps every file open: one
    more descriptor a flush, for good (967 flushes: out of descriptors). A
    small flush no longer writes the memtable out; a big one does, and past
    MAX_FILES files the family is compacted, the last level too."""
    monkeypatch.setattr(bufstore, "MAX_FILES", 4)
    catalog, eng = open_engine(tmp_path / "d")
    catalog.put(Namespace("app"))
    run = runner(eng)
    eng.create_table("app", "t", "shared", [col("k", primary_key=True), col("v", "TEXT")])
    for i in range(12):
        run(f"INSERT INTO app.t VALUES ({i}, '{os.urandom(size // 2).hex()}')")
        assert eng.flush_table("app", "t")["rows"] == 1
    assert bufstore.files(catalog) <= bufstore.MAX_FILES + 1
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": 12}]
    eng.close()
    catalog.close()
