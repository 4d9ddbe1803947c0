"""Duplicate-key detection without DuckDB (storage/keys.py) and the per-query
DuckDB machinery: the fast path must say "new key" only when the key has no
version anywhere, and every other case must still be caught exactly."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from catalog import DataFile, Namespace
from catalog.errors import AlreadyExists, Cancelled, InvalidArgument
from storage import duck, keys
from storage import engine as engine_mod
from storage.engine import Engine

from .conftest import Run, col, open_engine


class Counter:
    """Counts the DuckDB queries an engine runs (each goes through `_run`)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = engine._run

        def counted(plan: Any, *args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return real(plan, *args, **kwargs)

        monkeypatch.setattr(engine, "_run", counted)


def runner(eng: Engine) -> Run:
    def run(text: str, user: str | None = None, namespace: str | None = "app") -> Any:
        e = sqlglot.parse_one(text, read="duckdb")
        if isinstance(e, exp.Insert | exp.Update | exp.Delete):
            return eng.execute(e, user, namespace)
        return eng.query(e, user, namespace).to_pylist()

    return run


def test_new_keys_skip_duckdb(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    count = Counter(engine, monkeypatch)
    for i in range(20):
        run(f"INSERT INTO app.t VALUES ({i}, {i})")
    engine.flush_table("app", "t")
    for i in range(20, 40):
        run(f"INSERT INTO app.t VALUES ({i}, {i})")
    run("INSERT INTO app.t VALUES (100, 1), (101, 2)")
    assert count.n == 0
    run("INSERT INTO app.t VALUES (-5, 1)")  # below every file: still no DuckDB
    assert count.n == 0
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": 43}]


def test_duplicate_only_in_buffer(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2)")
    with pytest.raises(AlreadyExists, match=r"\(id\)=\(2\)"):
        run("INSERT INTO app.t VALUES (3, 3), (2, 9)")
    assert run("SELECT id, v FROM app.t ORDER BY id") == [{"id": 1, "v": 1}, {"id": 2, "v": 2}]


def test_duplicate_only_in_a_flushed_file(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    t = engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (5, 5), (9, 9)")
    engine.flush_table("app", "t")
    [f] = engine.catalog.scan(DataFile, t.uid)
    assert f.key_range == {"id": [1, 9]}
    count = Counter(engine, monkeypatch)
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (5, 0)")
    assert count.n == 1  # inside the file's range: DuckDB decides
    run("INSERT INTO app.t VALUES (4, 4)")  # inside the range but new
    run("INSERT INTO app.t VALUES (10, 10)")  # above it: no DuckDB
    assert count.n == 2
    assert [r["id"] for r in run("SELECT id FROM app.t ORDER BY id")] == [1, 4, 5, 9, 10]


def test_update_delete_reinsert(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2)")
    run("UPDATE app.t SET v = 20 WHERE id = 2")
    engine.flush_table("app", "t")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (2, 0)")
    run("DELETE FROM app.t WHERE id = 1")
    run("INSERT INTO app.t VALUES (1, 11)")  # back from soft deletion
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (1, 12)")
    engine.flush_table("app", "t")
    run("DELETE FROM app.t WHERE id = 1")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (1, 13)")
    assert run("SELECT id, v FROM app.t ORDER BY id") == [{"id": 1, "v": 13}, {"id": 2, "v": 20}]


def test_restart_rebuilds_what_it_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog, eng = open_engine(tmp_path / "d")
    catalog.put(Namespace("app"))
    eng.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run = runner(eng)
    run("INSERT INTO app.t VALUES (1, 1), (2, 2)")
    eng.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (3, 3)")  # stays in the buffer
    eng.close()
    catalog.close()
    catalog, eng = open_engine(tmp_path / "d")
    run = runner(eng)
    for dup in (1, 3):
        with pytest.raises(AlreadyExists):
            run(f"INSERT INTO app.t VALUES ({dup}, 0)")
    count = Counter(eng, monkeypatch)
    run("INSERT INTO app.t VALUES (4, 4)")
    assert count.n == 0
    eng.close()
    catalog.close()


@pytest.mark.parametrize("typ,a,b", [("BIGINT", "7", "8"), ("TEXT", "'k7'", "'k8'")])
def test_files_without_key_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typ: str, a: str, b: str
) -> None:
    """Files written before key ranges existed, or restored from a backup:
    integer keys fall back on Parquet footer statistics, others on DuckDB."""
    catalog, eng = open_engine(tmp_path / "d")
    catalog.put(Namespace("app"))
    t = eng.create_table("app", "t", "shared", [col("id", typ, primary_key=True), col("v")])
    run = runner(eng)
    run(f"INSERT INTO app.t VALUES ({a}, 1)")
    eng.flush_table("app", "t")
    eng.close()
    for f in catalog.scan(DataFile, t.uid):
        catalog.put(DataFile(**{**f.__dict__, "key_range": {}}))
    catalog.close()
    catalog, eng = open_engine(tmp_path / "d")
    run = runner(eng)
    with pytest.raises(AlreadyExists):
        run(f"INSERT INTO app.t VALUES ({a}, 2)")
    count = Counter(eng, monkeypatch)
    run(f"INSERT INTO app.t VALUES ({b}, 2)")
    assert count.n == (0 if typ == "BIGINT" else 1)
    assert len(run("SELECT * FROM app.t")) == 2
    eng.close()
    catalog.close()


def test_user_tables_keys_are_per_user(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "u", "user", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.u VALUES (1, 1)", user="alice")
    run("INSERT INTO app.u VALUES (1, 2)", user="bob")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.u VALUES (1, 3)", user="alice")
    engine.flush_table("app", "u")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.u VALUES (1, 3)", user="bob")
    count = Counter(engine, monkeypatch)
    run("INSERT INTO app.u VALUES (1, 4)", user="carol")  # no file of carol's
    run("INSERT INTO app.u VALUES (2, 4)", user="alice")  # above alice's file
    assert count.n == 0
    assert run("SELECT id, v FROM app.u ORDER BY id", user="alice") == [
        {"id": 1, "v": 1}, {"id": 2, "v": 4}]


def test_composite_and_text_keys(engine: Engine, run: Run) -> None:
    engine.create_table("app", "c", "shared",
                        [col("a", primary_key=True), col("b", "TEXT", primary_key=True), col("v")])
    run("INSERT INTO app.c VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3)")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.c VALUES (1, 'y', 9)")
    engine.flush_table("app", "c")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.c VALUES (2, 'x', 9)")
    run("INSERT INTO app.c VALUES (2, 'y', 4), (1, 'w', 5), (3, 'x', 6)")
    assert run("SELECT count(*) AS n FROM app.c") == [{"n": 6}]


def test_stream_eviction_frees_keys(engine: Engine, run: Run) -> None:
    engine.create_table("app", "s", "stream", [col("id", primary_key=True), col("v")],
                        {"max_buffer": 3})
    for i in range(5):
        run(f"INSERT INTO app.s VALUES ({i}, {i})")
    assert [r["id"] for r in run("SELECT id FROM app.s ORDER BY id")] == [2, 3, 4]
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.s VALUES (3, 0)")
    run("INSERT INTO app.s VALUES (0, 0)")  # evicted: free again
    assert [r["id"] for r in run("SELECT id FROM app.s ORDER BY id")] == [0, 3, 4]


def test_past_the_key_set_limit(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "KEYSET_LIMIT", 4)
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)")
    run("INSERT INTO app.t VALUES (4, 4), (5, 5)")  # the set gives up: DuckDB checks
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (5, 0)")
    engine.flush_table("app", "t")
    count = Counter(engine, monkeypatch)
    run("INSERT INTO app.t VALUES (6, 6)")  # rebuilt from an empty buffer
    assert count.n == 0
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (2, 0)")


def test_bulk_arrow_insert_checks_keys(engine: Engine, run: Run) -> None:
    engine.create_table("app", "b", "shared", [col("x", "BIGINT", primary_key=True), col("s", "TEXT")])
    engine.insert_arrow("app", "b", pa.table({"x": list(range(100)), "s": ["a"] * 100}))
    engine.flush_table("app", "b")
    engine.insert_arrow("app", "b", pa.table({"x": list(range(100, 200)), "s": ["b"] * 100}))
    with pytest.raises(AlreadyExists):
        engine.insert_arrow("app", "b", pa.table({"x": [500, 150], "s": ["c", "c"]}))
    with pytest.raises(AlreadyExists):
        engine.insert_arrow("app", "b", pa.table({"x": [600, 50], "s": ["c", "c"]}))
    assert run("SELECT count(*) AS n FROM app.b") == [{"n": 200}]


def test_file_may_hold() -> None:
    rng = {"id": [10, 20]}
    assert not keys.file_may_hold(rng, ["id"], [[5, 25]], [(5, 25)])  # each key outside
    assert keys.file_may_hold(rng, ["id"], [[5, 15]], [(5, 15)])
    assert not keys.file_may_hold(rng, ["id"], [[21]], [(21, 21)])
    assert keys.file_may_hold(None, ["id"], [[21]], [(21, 21)])  # unknown range
    assert keys.file_may_hold({"a": [1, 1]}, ["a", "b"], [[1], ["x"]], [(1, 1), None])
    assert not keys.file_may_hold({"a": [1, 1], "b": ["m", "p"]}, ["a", "b"], [[1], ["x"]],
                                  [(1, 1), ("x", "x")])


# --- the DuckDB side ------------------------------------------------------------


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


def test_public_duckdb_api_fallback(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duck, "_SUBMIT", None)
    monkeypatch.setattr(duck, "_REGISTER", None)
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1)")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (1, 2)")
    assert run("SELECT id, v FROM app.t") == [{"id": 1, "v": 1}]
    assert {r["namespace"] for r in run("SELECT namespace FROM system.namespaces")} == {"app"}


def test_system_tables_follow_the_catalog(engine: Engine, run: Run) -> None:
    first = engine._system_table("namespaces")
    assert engine._system_table("namespaces") is first  # unchanged: reused
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


def test_small_queries_retry_on_the_main_duckdb(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[bool] = []
    real = engine._attempt

    def attempt(plan: Any, deadline: Any, small: bool, fired: Any, *args: Any) -> Any:
        used.append(small)
        if small:
            raise duckdb.OutOfMemoryException("out of memory (test)")
        return real(plan, deadline, small, fired, *args)

    monkeypatch.setattr(engine, "_attempt", attempt)
    assert run("SELECT 1 AS x") == [{"x": 1}]
    assert used == [True, False]


def test_both_duckdbs_are_locked(engine: Engine) -> None:
    assert engine._small is not engine._con
    for con in (engine._con, engine._small):
        cur = con.cursor()
        settings = dict(cur.sql("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                "('enable_external_access', 'lock_configuration', 'threads')"
                                ).fetchall())
        assert settings["enable_external_access"] == "false"
        assert settings["lock_configuration"] == "true"
        with pytest.raises(duckdb.Error):
            cur.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            cur.sql("SELECT * FROM read_text('/etc/hostname')").fetchall()
    assert dict(engine._small.cursor().sql(
        "SELECT name, value FROM duckdb_settings() WHERE name = 'threads'").fetchall()) == {
        "threads": "1"}


@pytest.mark.parametrize("public_api", [False, True])
def test_registered_buffers_do_not_outlive_their_query(
    engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch, public_api: bool
) -> None:
    if public_api:
        monkeypatch.setattr(duck, "_REGISTER", None)
    names: list[str] = []
    real_add = duck.Sources.add

    def add(self: duck.Sources, placeholder: str, table: pa.Table) -> str:
        name = real_add(self, placeholder, table)
        names.append(name)
        return name

    monkeypatch.setattr(duck.Sources, "add", add)
    engine.create_table("app", "u", "user", [col("a")])
    run("INSERT INTO app.u VALUES (42)", user="alice")
    assert run("SELECT a FROM app.u", user="alice") == [{"a": 42}]
    assert names
    for slot in ("small", "main"):
        c = getattr(engine._local, slot, None)
        if c is None:
            continue
        for name in names:
            with pytest.raises(duckdb.Error):
                c.cur.sql(f"SELECT * FROM {name}").fetchall()


def test_watchdog_fires_only_live_alarms() -> None:
    dog = engine_mod._Watchdog()
    hits: list[str] = []
    a = dog.arm(0.05, lambda: hits.append("a"))
    b = dog.arm(0.05, lambda: hits.append("b"))
    assert dog.disarm(a) is False
    time.sleep(0.2)
    assert hits == ["b"]
    assert dog.disarm(b) is True
    dog.stop()


# --- point lookups --------------------------------------------------------------


def test_point_lookups_read_only_what_can_hold_the_key(
    engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (10, 10), (11, 11)")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (20, 20)")
    run("UPDATE app.t SET v = 99 WHERE id = 2")  # newer version in the buffer
    run("DELETE FROM app.t WHERE id = 11")
    seen: list[Any] = []
    real = engine._run

    def spy(plan: Any, *args: Any) -> Any:
        seen.append((len(set(re.findall(r"[^/']+\.parquet", plan.sql))), len(plan.arrow)))
        return real(plan, *args)

    monkeypatch.setattr(engine, "_run", spy)
    assert run("SELECT id, v FROM app.t WHERE id = 2") == [{"id": 2, "v": 99}]
    assert seen[-1] == (1, 1)  # the first file and the buffer
    assert run("SELECT id, v FROM app.t WHERE id = 10") == [{"id": 10, "v": 10}]
    assert seen[-1] == (1, 0)  # the second file only
    assert run("SELECT v FROM app.t WHERE id = 20 AND v > 0") == [{"v": 20}]
    assert seen[-1] == (0, 1)  # the buffer only
    assert run("SELECT id FROM app.t WHERE id = 11") == []
    assert run("SELECT id, _deleted FROM app.t WHERE id = 11 AND _deleted") == [
        {"id": 11, "_deleted": True}]
    assert run("SELECT count(*) AS n FROM app.t WHERE id = 7") == [{"n": 0}]
    assert seen[-1] == (0, 0)
    # not a point lookup on the key's own type: everything is read
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


def test_whole_system_table_without_duckdb(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """`SELECT * FROM system.x` is answered with the built table: the same as
    DuckDB's answer, column types and JSON markers included."""
    from catalog.errors import NotFound
    from storage import system_tables

    engine.catalog.put(Namespace("other", options={"owner": "ops"}))
    engine.create_table("app", "t", "shared", [col("id", primary_key=True)])
    run("INSERT INTO app.t VALUES (1)")
    count = Counter(engine, monkeypatch)
    for name in system_tables.COLUMNS:
        whole = engine.query(sqlglot.parse_one(f"SELECT * FROM system.{name} AS s"), None, None)
        via_duckdb = engine.query(sqlglot.parse_one(f"SELECT * FROM system.{name} WHERE true"),
                                  None, None)
        assert whole.equals(via_duckdb)
        assert whole.schema.equals(via_duckdb.schema, check_metadata=True)
    assert count.n == len(system_tables.COLUMNS)  # only the WHERE true ones
    with pytest.raises(NotFound):
        run("SELECT * FROM system.nope")


def test_which_duckdb_runs_a_query(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "t", "shared", [col("a")])
    run("INSERT INTO app.t VALUES (1), (2)")
    used: list[bool] = []
    real = engine._attempt

    def attempt(plan: Any, deadline: Any, small: bool, fired: Any, *args: Any) -> Any:
        used.append(small)
        return real(plan, deadline, small, fired, *args)

    monkeypatch.setattr(engine, "_attempt", attempt)
    run("SELECT a FROM app.t WHERE a = 1")
    run("SELECT x.a FROM app.t x JOIN app.t y ON x.a = y.a")
    run("SELECT count(*) AS n FROM range(1000)")  # rows unknown: the main one
    monkeypatch.setattr(engine_mod, "SMALL_QUERY_ROWS", 1)
    run("SELECT a FROM app.t")
    assert used == [True, True, False, False]


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


def test_keys_stay_exact_under_concurrent_flushes(engine: Engine, run: Run) -> None:
    """Writers, a flusher and point readers at once: a committed key is always
    found by a point lookup and always refused by a second INSERT."""
    import random
    import threading

    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    committed: list[int] = []
    lock = threading.Lock()
    errors: list[str] = []
    stop = time.monotonic() + 2.0

    def writer(base: int) -> None:
        i = 0
        while time.monotonic() < stop:
            run(f"INSERT INTO app.t VALUES ({base + i}, {i})")
            with lock:
                committed.append(base + i)
            i += 1

    def flusher() -> None:
        while time.monotonic() < stop:
            engine.flush_table("app", "t")
            time.sleep(0.02)

    def checker() -> None:
        while time.monotonic() < stop:
            with lock:
                if not committed:
                    continue
                k = random.choice(committed)
            if run(f"SELECT id FROM app.t WHERE id = {k}") != [{"id": k}]:
                errors.append(f"lookup of {k} missed")
            try:
                run(f"INSERT INTO app.t VALUES ({k}, 0)")
                errors.append(f"duplicate {k} accepted")
            except AlreadyExists:
                pass

    threads = [threading.Thread(target=writer, args=(b,)) for b in (0, 10**6)]
    threads += [threading.Thread(target=flusher), threading.Thread(target=checker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": len(committed)}]
