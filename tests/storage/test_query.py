"""How the engine runs a query (storage/query.py plans it, engine.py runs it):
point lookups read only the files that can hold the key, `SELECT * FROM
system.x` needs no DuckDB, small queries go to the small DuckDB and fall back
on the main one, and a failed or cancelled query leaves the engine usable.
Which DuckDB ran is read from the engine's public `duckdb_runs` count; which
files a query reads, from what still answers once the others are gone."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from catalog import Catalog, DataFile, Namespace
from catalog.errors import Cancelled, Internal, InvalidArgument, NotFound
from storage import engine as engine_mod
from storage import system_tables
from storage.engine import Engine

from .conftest import Cfg, Run, col, runner


def test_query_after_a_failed_and_a_cancelled_query(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("a")])
    run("INSERT INTO app.t VALUES (1)")
    with pytest.raises(InvalidArgument):
        run("SELECT nope FROM app.t")
    assert run("SELECT a FROM app.t") == [{"a": 1}]
    slow = sqlglot.parse_one("SELECT count(*) FROM range(100000000) a, range(100000) b",
                             read="duckdb")
    with pytest.raises(Cancelled):
        engine.query(slow, None, "app", timeout=0.2)
    t0 = time.monotonic()
    assert engine.query(sqlglot.parse_one("SELECT a FROM app.t"), None, "app",
                        timeout=0.5).to_pylist() == [{"a": 1}]
    time.sleep(0.6)  # past that query's deadline: its alarm must not fire on a later one
    assert time.monotonic() - t0 > 0.5
    assert run("SELECT a FROM app.t") == [{"a": 1}]


def test_system_tables_follow_the_catalog(engine: Engine, run: Run) -> None:
    whole = sqlglot.parse_one("SELECT * FROM system.namespaces")
    first = engine.query(whole, None, None)
    assert engine.query(whole, None, None) is first  # unchanged: the built table is reused
    engine.catalog.put(Namespace("other"))
    assert {r["namespace"] for r in run("SELECT namespace FROM system.namespaces")} == {
        "app", "other"}
    engine.create_table("other", "t", "shared", [col("a")])
    assert run("SELECT table_count FROM system.namespaces WHERE namespace = 'other'") == [
        {"table_count": 1}]
    run("INSERT INTO other.t VALUES (1)")
    assert run("SELECT buffered_rows FROM system.tables") == [{"buffered_rows": 1}]
    engine.catalog.delete(Namespace, "other")
    assert {r["namespace"] for r in run("SELECT namespace FROM system.namespaces")} == {"app"}


def test_whole_system_table_without_duckdb(engine: Engine, run: Run) -> None:
    """`SELECT * FROM system.x` is answered with the built table: the same as
    DuckDB's answer, column types and JSON markers included."""
    engine.catalog.put(Namespace("other", options={"owner": "ops"}))
    engine.create_table("app", "t", "shared", [col("id", primary_key=True)])
    run("INSERT INTO app.t VALUES (1)")
    before = sum(engine.duckdb_runs.values())
    for name in system_tables.COLUMNS:
        whole = engine.query(sqlglot.parse_one(f"SELECT * FROM system.{name} AS s"), None, None)
        via_duckdb = engine.query(sqlglot.parse_one(f"SELECT * FROM system.{name} WHERE true"),
                                  None, None)
        assert whole.equals(via_duckdb)
        assert whole.schema.equals(via_duckdb.schema, check_metadata=True)
    # only the WHERE true ones
    assert sum(engine.duckdb_runs.values()) - before == len(system_tables.COLUMNS)
    with pytest.raises(NotFound):
        run("SELECT * FROM system.nope")


# --- which DuckDB ---------------------------------------------------------------


def test_which_duckdb_runs_a_query(
    engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.create_table("app", "t", "shared", [col("a")])
    run("INSERT INTO app.t VALUES (1), (2)")

    def ran(sql: str) -> str:
        before = dict(engine.duckdb_runs)
        run(sql)
        [(which, n)] = [(k, v - before.get(k, 0)) for k, v in engine.duckdb_runs.items()
                        if v != before.get(k, 0)]
        assert n == 1
        return which

    assert ran("SELECT a FROM app.t WHERE a = 1") == "small"
    assert ran("SELECT x.a FROM app.t x JOIN app.t y ON x.a = y.a") == "small"
    assert ran("SELECT count(*) AS n FROM range(1000)") == "main"  # rows unknown
    monkeypatch.setattr(engine_mod, "SMALL_QUERY_ROWS", 1)
    assert ran("SELECT a FROM app.t") == "main"


def test_small_queries_retry_on_the_main_duckdb(tmp_path: Path) -> None:
    """A query over few rows that needs more memory than the small DuckDB has
    (a quarter of the limit, at least 64 MB) is run again on the main one."""
    catalog = Catalog(tmp_path / "catalog")
    eng = Engine(catalog, tmp_path, Cfg(duckdb_memory_limit="256MB"))
    try:
        catalog.put(Namespace("app"))
        eng.create_table("app", "t", "shared", [col("a")])
        run = runner(eng)
        run("INSERT INTO app.t VALUES (1), (2), (3)")
        big = ("SELECT list(i ORDER BY i DESC)[1] AS top "
               "FROM (SELECT a, unnest(range(1000000)) AS i FROM app.t)")
        before = dict(eng.duckdb_runs)
        assert run(big) == [{"top": 999_999}]
        assert eng.duckdb_runs["small"] - before.get("small", 0) == 1
        assert eng.duckdb_runs["main"] - before.get("main", 0) == 1
        assert run("SELECT a FROM app.t WHERE a = 2") == [{"a": 2}]  # the small one still works
    finally:
        eng.close()
        catalog.close()


# --- point lookups --------------------------------------------------------------


class Aside:
    """Moves a table's Parquet file out of the data dir and back: a query that
    needs it then fails, one that does not still answers."""

    def __init__(self, engine: Engine, f: DataFile, tmp: Path) -> None:
        self.path = engine.files.abs(f.path)
        self.away = tmp / f"aside-{self.path.name}"

    def __enter__(self) -> None:
        shutil.move(self.path, self.away)

    def __exit__(self, *exc: object) -> None:
        shutil.move(self.away, self.path)


def test_point_lookups_read_only_what_can_hold_the_key(
    engine: Engine, run: Run, tmp_path: Path
) -> None:
    t = engine.create_table("app", "t", "shared",
                            [col("id", "BIGINT", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (10, 10), (11, 11)")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (20, 20)")
    run("UPDATE app.t SET v = 99 WHERE id = 2")  # newer version in the buffer
    run("DELETE FROM app.t WHERE id = 11")
    low, high = sorted(engine.catalog.scan(DataFile, t.uid), key=lambda f: f.key_range["id"])
    assert (low.key_range, high.key_range) == ({"id": [1, 3]}, {"id": [10, 11]})
    with Aside(engine, high, tmp_path):
        assert run("SELECT id, v FROM app.t WHERE id = 2") == [{"id": 2, "v": 99}]
        assert run("SELECT v FROM app.t WHERE id = 20 AND v > 0") == [{"v": 20}]  # buffer only
        assert run("SELECT count(*) AS n FROM app.t WHERE id = 7") == [{"n": 0}]
        with pytest.raises(Internal, match="data directory is damaged"):
            run("SELECT id, v FROM app.t WHERE id = 10")  # this one needs the file
    with Aside(engine, low, tmp_path):
        assert run("SELECT id, v FROM app.t WHERE id = 10") == [{"id": 10, "v": 10}]
        assert run("SELECT id FROM app.t WHERE id = 11") == []
        assert run("SELECT id, _deleted FROM app.t WHERE id = 11 AND _deleted") == [
            {"id": 11, "_deleted": True}]
        assert run("SELECT v FROM app.t WHERE id = 20") == [{"v": 20}]
        with pytest.raises(Internal, match="data directory is damaged"):
            run("SELECT id FROM app.t WHERE id = 2")
    # not a point lookup on the key's own type, or more than one key: still right
    assert run("SELECT id FROM app.t WHERE id = '3'") == [{"id": 3}]
    assert run("SELECT id FROM app.t WHERE id = 3 OR id = 20 ORDER BY id") == [
        {"id": 3}, {"id": 20}]
    assert run("SELECT id FROM app.t WHERE id = 3 AND id = 20") == []
    assert run("SELECT x.id FROM app.t AS x WHERE x.id = -1") == []


def test_point_lookups_user_composite_text(engine: Engine, run: Run) -> None:
    engine.create_table("app", "u", "user", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.u VALUES (1, 1)", user="alice")
    run("INSERT INTO app.u VALUES (1, 2)", user="bob")
    engine.flush_table("app", "u")
    run("UPDATE app.u SET v = 3 WHERE id = 1", user="bob")
    assert run("SELECT v FROM app.u WHERE id = 1", user="alice") == [{"v": 1}]
    assert run("SELECT v FROM app.u WHERE id = 1", user="bob") == [{"v": 3}]
    engine.create_table("app", "c", "shared",
                        [col("a", primary_key=True), col("b", "TEXT", primary_key=True), col("v")])
    run("INSERT INTO app.c VALUES (1, 'x', 1), (1, 'y', 2)")
    engine.flush_table("app", "c")
    run("INSERT INTO app.c VALUES (2, 'x', 3)")
    assert run("SELECT v FROM app.c WHERE b = 'y' AND a = 1") == [{"v": 2}]
    assert run("SELECT v FROM app.c WHERE (a = 2) AND (b = 'x')") == [{"v": 3}]
    assert run("SELECT v FROM app.c WHERE a = 1 ORDER BY v") == [{"v": 1}, {"v": 2}]


def test_point_lookups_on_the_generated_id(engine: Engine, run: Run) -> None:
    engine.create_table("app", "n", "shared", [col("v")])
    run("INSERT INTO app.n VALUES (1), (2)")
    ids = [r["_id"] for r in run("SELECT _id FROM app.n ORDER BY v")]
    assert run(f"SELECT v FROM app.n WHERE _id = {ids[1]}") == [{"v": 2}]
    run("INSERT INTO app.n VALUES (3)")
    new = run("SELECT _id FROM app.n WHERE v = 3")[0]["_id"]
    assert run(f"SELECT v FROM app.n WHERE _id = {new}") == [{"v": 3}]
    engine.flush_table("app", "n")
    run("INSERT INTO app.n VALUES (4)")
    newer = run("SELECT _id FROM app.n WHERE v = 4")[0]["_id"]
    assert run(f"SELECT v FROM app.n WHERE _id = {newer}") == [{"v": 4}]
    assert run(f"SELECT v FROM app.n WHERE _id = {ids[0]}") == [{"v": 1}]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_answer_is_cut_by_the_bytes_its_values_use(seed: int) -> None:
    """ResultLimits.cut keeps the most rows whose `nbytes` is within
    max_bytes; it asks the buffers' size first (which holds the GIL), and
    slices, whose buffers are far larger than their values, come out as
    `nbytes` alone would cut them."""
    import random

    import pyarrow as pa

    from storage.limits import TRUNCATED, ResultLimits

    def by_nbytes(table: pa.Table, max_bytes: int) -> int:
        return max((k for k in range(table.num_rows + 1)
                    if table.slice(0, k).nbytes <= max_bytes), default=0)

    rng = random.Random(seed)
    for _ in range(40):
        n = rng.randint(1, 300)
        whole = pa.table({"id": pa.array(range(n), pa.int64()),
                          "v": [rng.randbytes(rng.randint(0, 40)).hex() for _ in range(n)]})
        start = rng.randint(0, n - 1)
        table = whole.slice(start, rng.randint(1, n - start)) if rng.random() < 0.5 else whole
        limit = rng.randint(0, table.nbytes + 50)
        cut = ResultLimits(max_bytes=limit).cut(table)
        assert cut.num_rows == by_nbytes(table, limit)
        assert (cut.schema.metadata or {}).get(TRUNCATED) == (
            b"true" if cut.num_rows < table.num_rows else None)


def test_a_cut_answer_holds_only_the_rows_it_keeps() -> None:
    """A cut answer was a slice of what it was cut from and kept all of it
    alive: a SELECT cut to no row still held DuckDB's whole batch (60 MB for
    60 values of 1 MB), and a request of 40 such SELECTs 2.6 GB."""
    import duckdb
    import pyarrow as pa

    from storage import duck
    from storage.limits import ResultLimits

    cur = duckdb.connect().cursor()
    text = "SELECT i, repeat('x', 100000) AS s FROM range(50) r(i)"  # one 5 MB batch
    for max_rows, max_bytes, kept in ((None, 250_000, 2), (None, 0, 0), (1, None, 1)):
        table, cut = duck.fetch_bounded(cur, text, max_rows, max_bytes)
        assert cut and table.num_rows == kept
        assert table.column("i").to_pylist() == list(range(kept))
        assert table.get_total_buffer_size() <= kept * 100_100 + 1000, (max_rows, max_bytes)
    whole = pa.table({"s": ["x" * 100_000] * 50})
    for limits, kept in ((ResultLimits(max_rows=1), 1), (ResultLimits(max_bytes=10), 0)):
        table = limits.cut(whole)
        assert table.num_rows == kept and ResultLimits.truncated(table)
        assert table.get_total_buffer_size() <= kept * 100_100 + 1000


def test_system_jobs_decodes_only_the_records_changed_since_its_last_build(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """system.jobs after a job's row changed, a job was added or the oldest
    were trimmed is exactly the table a build from nothing gives, and only
    the records after the unchanged run are decoded (a running job rewrites
    its row every 50 ms and the web console asks every second: with 10,000
    jobs of history each ask decoded them all, ~150 ms of the GIL)."""
    from catalog import Job

    cat = engine.catalog
    for i in range(40):
        cat.put(Job(f"job-{i:04d}", "backup", status="completed", namespace="app",
                    result={"backup_id": f"bk-{i}"}, fraction_completed=1.0))
    cat.put(Job("job-0040", "backup", status="running", namespace="app"))
    system_tables.build(engine, "jobs")
    decoded: list[bytes] = []
    loads = Job.loads.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Job, "loads", classmethod(
        lambda cls, raw: (decoded.append(raw), loads(cls, raw))[1]))

    def fresh() -> list[dict[str, Any]]:
        saved = dict(engine.system_cache)
        engine.system_cache.clear()
        try:
            return system_tables.build(engine, "jobs").to_pylist()  # type: ignore[union-attr]
        finally:
            engine.system_cache.clear()
            engine.system_cache.update(saved)

    steps = [
        ("progress", lambda: cat.put(Job("job-0040", "backup", status="running",
                                         namespace="app", fraction_completed=0.5)), 1),
        ("a new job", lambda: cat.put(Job("job-0041", "flush", status="queued")), 1),
        ("the oldest trimmed", lambda: [cat.delete(Job, f"job-{i:04d}") for i in range(3)], 0),
        ("one in the middle", lambda: cat.delete(Job, "job-0020"), 21),
    ]
    for what, change, expected in steps:
        change()
        decoded.clear()
        got = system_tables.build(engine, "jobs")
        assert got is not None
        assert len(decoded) == expected, what
        assert got.to_pylist() == fresh(), what
    assert system_tables.build(engine, "jobs").column(0).num_chunks <= system_tables.CHUNKS_KEPT
