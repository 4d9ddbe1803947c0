"""A flush compacts away the rows RocksDB had already written to disk before
the flush deleted them, once they pass a threshold: otherwise every later scan
of the buffer (a table's first load after a start) steps over them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog import Namespace
from storage import bufstore, flush

from .conftest import col, open_engine, runner


def _sst_bytes(catalog, family: str) -> int:  # type: ignore[no-untyped-def]
    return int(catalog.family(family).property_int_value("rocksdb.total-sst-files-size") or 0)


@pytest.mark.parametrize("threshold", [1024**2, 10**12])
def test_flush_compacts_the_deleted_rows_on_disk(tmp_path: Path, threshold: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flush, "COMPACT_DELETED_BYTES", threshold)
    catalog, eng = open_engine(tmp_path / "d")
    catalog.put(Namespace("app"))
    t = eng.create_table("app", "t", "shared", [col("id", primary_key=True), col("v", "TEXT")])
    run = runner(eng)
    assert t.uid  # every table's buffer is in the one family
    fam = bufstore.FAMILY
    blob = os.urandom(200_000).hex()  # 400 KB of text per row, 4 MB in all
    for i in range(10):
        run(f"INSERT INTO app.t VALUES ({i}, '{blob}')")
    catalog.flush_family(fam)  # what RocksDB does by itself once a memtable fills
    assert _sst_bytes(catalog, fam) > 3 * 1024**2
    eng.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (100, 'after')")  # a live row stays in the buffer
    left = _sst_bytes(catalog, fam)
    if threshold < 10**12:
        assert left < 1024**2
    else:  # never compacted: the deleted rows are still on disk
        assert left > 3 * 1024**2
    eng.close()
    catalog.close()
    catalog, eng = open_engine(tmp_path / "d")
    run = runner(eng)
    assert [r["id"] for r in run("SELECT id FROM app.t ORDER BY id")] == [*range(10), 100]
    assert run("SELECT v FROM app.t WHERE id = 3") == [{"v": blob}]
    eng.close()
    catalog.close()
