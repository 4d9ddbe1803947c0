"""DuckDB's freed memory is handed back after queries on the main DuckDB
(storage/allocator.py), only there, and not when the setting is off."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import Catalog, Namespace
from storage import allocator
from storage.engine import Engine

from .conftest import Cfg, col, runner


def test_the_installed_duckdb_can_be_asked_to_purge() -> None:
    assert allocator.purge() is True


@pytest.mark.parametrize("enabled", [True, False])
def test_purge_after_main_queries_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       enabled: bool) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "purge", lambda: calls.append(1) or True)
    catalog = Catalog(tmp_path / "catalog")
    eng = Engine(catalog, tmp_path, Cfg(duckdb_release_memory=enabled))
    try:
        catalog.put(Namespace("app"))
        eng.create_table("app", "t", "shared", [col("a", primary_key=True)])
        run = runner(eng)
        run("INSERT INTO app.t VALUES (1), (2), (3)")
        assert run("SELECT count(*) AS n FROM app.t") == [{"n": 3}]  # few rows: small DuckDB
        assert calls == []
        assert run("SELECT count(*) AS n FROM range(200000)") == [{"n": 200000}]  # main DuckDB
        assert calls == ([1] if enabled else [])
    finally:
        eng.close()
        catalog.close()


def test_a_small_query_that_allocated_much_is_purged_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query of no table (the small DuckDB) whose plan is huge: a 2,000-branch
    UNION ALL of constants allocates ~110 MB on its thread (a role user's 5,000
    branches left ~360 MB resident each, 3.2 GB after 20). Small queries that
    allocate little are not followed by a purge."""
    calls: list[int] = []
    monkeypatch.setattr(allocator, "purge", lambda: calls.append(1) or True)
    catalog = Catalog(tmp_path / "catalog")
    eng = Engine(catalog, tmp_path, Cfg())
    try:
        run = runner(eng)
        assert run("SELECT 41 + 1 AS n") == [{"n": 42}]
        assert calls == []
        union = " UNION ALL ".join(f"SELECT {i} AS n" for i in range(2000))
        assert len(run(f"SELECT count(*) AS c FROM ({union})")) == 1
        assert calls == [1]
    finally:
        eng.close()
        catalog.close()


def test_the_thread_counter_counts_this_threads_allocations() -> None:
    """The counter the purge decision reads moves with what DuckDB allocates
    on this thread, by about that much."""
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    try:
        before = allocator.thread_allocated()
        con.execute("SELECT count(*) FROM (" + " UNION ALL ".join(
            f"SELECT {i}" for i in range(500)) + ")").fetchall()
        grown = allocator.thread_allocated() - before
        assert grown > 4 << 20
        before = allocator.thread_allocated()
        con.execute("SELECT 1").fetchall()
        assert allocator.thread_allocated() - before < allocator.PURGE_AFTER_BYTES
    finally:
        con.close()


@pytest.mark.parametrize("enabled", [True, False])
def test_flush_empties_the_buffer_familys_memtable(tmp_path: Path, enabled: bool) -> None:
    """After a flush the rows are in Parquet: RocksDB's copy of them in the
    memtable goes too (else up to 64 MB per table stays until RocksDB flushes)."""
    catalog = Catalog(tmp_path / "catalog")
    eng = Engine(catalog, tmp_path, Cfg(duckdb_release_memory=enabled))
    try:
        catalog.put(Namespace("app"))
        eng.create_table("app", "t", "shared", [col("a", primary_key=True), col("b", "TEXT")])
        run = runner(eng)
        run("INSERT INTO app.t SELECT range AS a, repeat('x', 500) AS b FROM range(2000)")
        fam = catalog.family(eng.state("app", "t").family)
        held = fam.property_int_value("rocksdb.size-all-mem-tables")
        assert held > 1_000_000
        assert eng.flush_table("app", "t")["rows"] == 2000
        after = fam.property_int_value("rocksdb.size-all-mem-tables")
        assert (after < 100_000) if enabled else (after >= held)
        rows = run("SELECT count(*) AS n, min(length(b)) AS m FROM app.t")
        assert rows == [{"n": 2000, "m": 500}]
    finally:
        eng.close()
        catalog.close()


def test_buffered_batches_share_one_schema(engine: Engine) -> None:
    """Each statement's rows are made with the table's cached schema (one
    object per schema version, ~2.7 KB less per buffered batch than a schema
    of its own); ALTER TABLE makes a new one."""
    run = runner(engine)
    engine.create_table("app", "t", "shared", [col("a", primary_key=True), col("b", "TEXT")])
    st = engine.state("app", "t")
    first = st.row_schema()
    for i in range(3):
        run(f"INSERT INTO app.t VALUES ({i}, 'x')")
    assert st.row_schema() is first
    assert all(b.rows.schema.equals(first) for b in st.batches.values())
    engine.add_column("app", "t", col("c"))
    run("INSERT INTO app.t VALUES (9, 'y', 7)")
    assert st.row_schema() is not first and "c" in st.row_schema().names
    assert list(st.batches.values())[-1].rows.schema.equals(st.row_schema())
    assert run("SELECT a, c FROM app.t ORDER BY a") == [
        {"a": 0, "c": None}, {"a": 1, "c": None}, {"a": 2, "c": None}, {"a": 9, "c": 7}]
