"""`conform_batches` (runs of batches joined, then conformed once) must give
exactly what conforming batch by batch gives, across schema versions (added
columns with defaults, dropped columns), USER tables, and batches decoded
from RocksDB after a restart (each with a schema object of its own)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from catalog import Namespace
from storage.buffer import TableState, conform, conform_batches

from .conftest import col, open_engine, runner


def _one_by_one(st: TableState) -> pa.Table:
    loose = st.loose_schema()
    parts = [conform(b.rows, b.version, st.table, st.columns).cast(loose)
             for b in st.batches.values()]
    return pa.concat_tables(parts) if parts else loose.empty_table()


def _joined(st: TableState) -> pa.Table:
    loose = st.loose_schema()
    parts = conform_batches(list(st.batches.values()), st.table, st.columns, st.schema.version,
                            loose)
    return pa.concat_tables(parts) if parts else loose.empty_table()


def test_conform_batches_equals_batch_by_batch(tmp_path: Path) -> None:
    catalog, engine = open_engine(tmp_path / "data")
    catalog.put(Namespace("app"))
    run = runner(engine)
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v"),
                                               col("gone", "TEXT")])
    engine.create_table("app", "u", "user", [col("k", "TEXT", primary_key=True), col("v")])
    for i in range(5):
        run(f"INSERT INTO app.t VALUES ({i}, {i}, 'g{i}')")
        run(f"INSERT INTO app.u VALUES ('k{i}', {i})", user=f"user{i % 2}")
    run("INSERT INTO app.t VALUES (10, 1, 'a'), (11, 2, 'b')")
    engine.add_column("app", "t", col("w", "INT", has_default=True, default=7))
    run("UPDATE app.t SET v = 9 WHERE id = 1")
    run("INSERT INTO app.t (id, v, w) VALUES (20, 2, 3)")
    engine.drop_column("app", "t", "gone")
    run("INSERT INTO app.t (id, v) VALUES (21, 5)")
    run("DELETE FROM app.t WHERE id = 2")
    # Dropped and added again: rows written before have the column's name and
    # type (the same schema as now) but must read the new column's default.
    engine.create_table("app", "x", "shared", [col("id", "BIGINT", primary_key=True), col("c")])
    run("INSERT INTO app.x VALUES (1, 1)")
    engine.drop_column("app", "x", "c")
    engine.add_column("app", "x", col("c", "INT", has_default=True, default=5))
    run("INSERT INTO app.x VALUES (2, 2)")
    x = engine.state("app", "x")
    assert [r["c"] for r in _joined(x).to_pylist()] == [5, 2]
    for name in ("t", "u", "x"):
        st = engine.state("app", name)
        assert len(st.batches) >= 2
        assert _joined(st).equals(_one_by_one(st), check_metadata=True)
        assert _joined(st).schema == st.loose_schema()
    engine.close()
    catalog.close()
    catalog, engine = open_engine(tmp_path / "data")  # batches decoded from RocksDB
    for name in ("t", "u", "x"):
        st = engine.state("app", name)
        assert _joined(st).equals(_one_by_one(st), check_metadata=True)
        assert {r["id"] for r in _joined(engine.state("app", "t")).to_pylist()} >= {20, 21}
    engine.close()
    catalog.close()
