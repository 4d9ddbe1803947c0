"""Every table's write buffer in one RocksDB family (storage/bufstore.py), and
the move of a data directory in the old layout (a family a table, `buf_<uid>`)
into it when it is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import Catalog, Namespace
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
