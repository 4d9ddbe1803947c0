"""Duplicate-key detection without DuckDB (storage/keys.py): the fast path must
say "new key" only when the key has no version anywhere, and every other case
must still be caught exactly. Whether DuckDB was asked is read from the
engine's public `duckdb_runs` count."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from catalog import DataFile, Namespace
from catalog.errors import AlreadyExists
from storage import keys
from storage.engine import Engine

from .conftest import Run, col, open_engine, runner


def duckdb_runs(engine: Engine) -> int:
    """DuckDB queries this engine has run so far."""
    return sum(engine.duckdb_runs.values())


def test_new_keys_skip_duckdb(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    before = duckdb_runs(engine)
    for i in range(20):
        run(f"INSERT INTO app.t VALUES ({i}, {i})")
    engine.flush_table("app", "t")
    for i in range(20, 40):
        run(f"INSERT INTO app.t VALUES ({i}, {i})")
    run("INSERT INTO app.t VALUES (100, 1), (101, 2)")
    assert duckdb_runs(engine) == before
    run("INSERT INTO app.t VALUES (-5, 1)")  # below every file: still no DuckDB
    assert duckdb_runs(engine) == before
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": 43}]


def test_duplicate_only_in_buffer(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2)")
    with pytest.raises(AlreadyExists, match=r"\(id\)=\(2\)"):
        run("INSERT INTO app.t VALUES (3, 3), (2, 9)")
    assert run("SELECT id, v FROM app.t ORDER BY id") == [{"id": 1, "v": 1}, {"id": 2, "v": 2}]


def test_duplicate_only_in_a_flushed_file(engine: Engine, run: Run) -> None:
    t = engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (5, 5), (9, 9)")
    engine.flush_table("app", "t")
    [f] = engine.catalog.scan(DataFile, t.uid)
    assert f.key_range == {"id": [1, 9]}
    before = duckdb_runs(engine)
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (5, 0)")
    assert duckdb_runs(engine) - before == 1  # inside the file's range: DuckDB decides
    run("INSERT INTO app.t VALUES (4, 4)")  # inside the range, but the file's key filter:
    run("INSERT INTO app.t VALUES (10, 10)")  # above it: no DuckDB
    assert duckdb_runs(engine) - before == 1
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


def test_restart_rebuilds_what_it_knows(tmp_path: Path) -> None:
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
    before = duckdb_runs(eng)
    run("INSERT INTO app.t VALUES (4, 4)")
    assert duckdb_runs(eng) == before
    eng.close()
    catalog.close()


@pytest.mark.parametrize("typ,a,b", [("BIGINT", "7", "8"), ("TEXT", "'k7'", "'k8'")])
def test_files_without_key_range(
    tmp_path: Path, typ: str, a: str, b: str
) -> None:
    """Files written before key ranges existed, or restored from a backup:
    integer keys fall back on Parquet footer statistics; both get a key filter
    built from the file on the first check that needs it."""
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
    before = duckdb_runs(eng)
    run(f"INSERT INTO app.t VALUES ({b}, 2)")
    assert duckdb_runs(eng) == before
    assert len(run("SELECT * FROM app.t")) == 2
    eng.close()
    catalog.close()


def test_user_tables_keys_are_per_user(engine: Engine, run: Run) -> None:
    engine.create_table("app", "u", "user", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.u VALUES (1, 1)", user="alice")
    run("INSERT INTO app.u VALUES (1, 2)", user="bob")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.u VALUES (1, 3)", user="alice")
    engine.flush_table("app", "u")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.u VALUES (1, 3)", user="bob")
    before = duckdb_runs(engine)
    run("INSERT INTO app.u VALUES (1, 4)", user="carol")  # no file of carol's
    run("INSERT INTO app.u VALUES (2, 4)", user="alice")  # above alice's file
    assert duckdb_runs(engine) == before
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


def index_holds(engine: Engine, name: str) -> tuple[int, int]:
    """(references in the table's buffer key index, rows its buffer holds)."""
    st = engine.state("app", name)
    index = st.keys.keys or {}
    refs = sum(len(v) if isinstance(v, list) else 1 for v in index.values())
    return refs, st.buffered_rows()


def test_key_index_follows_the_buffer(engine: Engine, run: Run) -> None:
    """Keys that left the buffer (evicted past a stream's max_buffer, expired
    past its TTL, flushed from a SHARED table) do not stay in the key index
    for good: a stream of always-new keys kept every one of them before.
    Duplicates are still refused: a buffered or flushed key, not an evicted one."""
    engine.create_table("app", "s", "stream", [col("k", "TEXT", primary_key=True), col("v")],
                        {"max_buffer": 100})
    engine.create_table("app", "e", "stream", [col("k", "TEXT", primary_key=True), col("v")],
                        {"ttl_seconds": 0.01})
    engine.create_table("app", "h", "shared", [col("k", "TEXT", primary_key=True), col("v")])
    for i in range(40):
        vals = ",".join(f"('{i:03d}-{j:03d}', {j})" for j in range(100))
        for name in ("s", "e", "h"):
            run(f"INSERT INTO app.{name} VALUES {vals}")
        run(f"INSERT INTO app.s VALUES ('{i:03d}-x', 0)")  # one at a time too
        if i % 5 == 4:
            engine.flush_table("app", "h")
            time.sleep(0.02)
            assert engine.evict_streams() == 500
        for name in ("s", "e", "h"):
            refs, held = index_holds(engine, name)
            assert refs <= 2 * held + keys.REBUILD_SLACK, (name, i, refs, held)
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.s VALUES ('039-050', 1)")  # still buffered
    run("INSERT INTO app.s VALUES ('000-050', 1)")  # evicted long ago: new again
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.h VALUES ('000-050', 1)")  # flushed: in a file
    run("INSERT INTO app.e VALUES ('000-050', 1)")  # expired
    assert run("SELECT count(*) AS n FROM app.h") == [{"n": 4000}]


def test_key_index_follows_updates_of_one_key(engine: Engine, run: Run) -> None:
    """A key updated again and again, flushed between, with no point lookup:
    its entry named every batch that ever held a version of it."""
    engine.create_table("app", "u", "shared", [col("k", "TEXT", primary_key=True), col("v")])
    run("INSERT INTO app.u VALUES ('a', 0), ('b', 0)")
    for i in range(400):
        run("UPDATE app.u SET v = v + 1 WHERE v >= 0")
        if i % 10 == 9:
            engine.flush_table("app", "u")
        refs, held = index_holds(engine, "u")
        assert refs <= 2 * held + keys.REBUILD_SLACK, (i, refs, held)
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.u VALUES ('a', 1)")
    assert run("SELECT k, v FROM app.u ORDER BY k") == [{"k": "a", "v": 400}, {"k": "b", "v": 400}]


def test_past_the_key_set_limit(engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "KEYSET_LIMIT", 4)
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)")
    run("INSERT INTO app.t VALUES (4, 4), (5, 5)")  # the set gives up: DuckDB checks
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (5, 0)")
    engine.flush_table("app", "t")
    before = duckdb_runs(engine)
    run("INSERT INTO app.t VALUES (6, 6)")  # rebuilt from an empty buffer
    assert duckdb_runs(engine) == before
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (2, 0)")


def test_bulk_arrow_insert_checks_keys(engine: Engine, run: Run) -> None:
    engine.create_table("app", "b", "shared",
                        [col("x", "BIGINT", primary_key=True), col("s", "TEXT")])
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


def test_keys_stay_exact_under_concurrent_flushes(engine: Engine, run: Run) -> None:
    """Writers, a flusher and point readers at once: a committed key is always
    found by a point lookup and always refused by a second INSERT."""
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


def test_a_full_stream_does_not_rebuild_its_index_at_every_duplicate(
        engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a full stream each INSERT evicts a batch (the index goes stale), and
    a probe that hit a stale index rebuilt it whole: an INSERT of a buffered
    key after every new one cost O(max_buffer) under the table's lock. A
    stale index is a superset its readers skip the gone batches of; only
    `removed` rebuilds it, once it holds twice what the buffer does."""
    engine.create_table("app", "s", "stream", [col("id", primary_key=True), col("v")],
                        {"max_buffer": 500})
    for i in range(500):
        run(f"INSERT INTO app.s VALUES ({i}, {i})")
    rebuilds = []
    real = keys.BufferKeys._rebuild
    monkeypatch.setattr(keys.BufferKeys, "_rebuild",
                        lambda self, *a: (rebuilds.append(1), real(self, *a))[1])
    for i in range(500, 700):
        run(f"INSERT INTO app.s VALUES ({i}, {i})")  # evicts the oldest
        with pytest.raises(AlreadyExists):
            run(f"INSERT INTO app.s VALUES ({i - 1}, 0)")  # buffered: refused, as before
    assert len(rebuilds) <= 2, len(rebuilds)  # was 200: one a duplicate
    run("INSERT INTO app.s VALUES (150, 0)")  # evicted: free again, from the stale index
    ids = [r["id"] for r in run("SELECT id FROM app.s ORDER BY id")]
    assert len(ids) == 500 and ids[0] == 150 and ids[1:] == list(range(201, 700))


def test_a_stream_past_the_key_set_limit_does_not_recount_at_every_insert(
        engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past KEYSET_LIMIT buffered keys the index is unknown, and each eviction
    marks it stale: every INSERT of a full stream then re-summed every
    batch's rows (a rebuild that gave up), O(max_buffer) under the table's
    lock. The buffer's row count is kept; the index is rebuilt only once it
    could hold the keys again."""
    monkeypatch.setattr(keys, "KEYSET_LIMIT", 4)
    engine.create_table("app", "s", "stream", [col("id", primary_key=True), col("v")],
                        {"max_buffer": 10})
    for i in range(10):
        run(f"INSERT INTO app.s VALUES ({i}, {i})")
    rebuilds = []
    real = keys.BufferKeys._rebuild
    monkeypatch.setattr(keys.BufferKeys, "_rebuild",
                        lambda self, *a: (rebuilds.append(1), real(self, *a))[1])
    for i in range(10, 60):
        run(f"INSERT INTO app.s VALUES ({i}, {i})")  # evicts the oldest
    assert rebuilds == []  # was one a statement
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.s VALUES (55, 0)")  # still checked (by DuckDB)
    run("INSERT INTO app.s VALUES (3, 0)")  # evicted: free again
    ids = [r["id"] for r in run("SELECT id FROM app.s ORDER BY id")]
    assert ids == [3, *range(51, 60)]


def test_a_duplicate_key_is_named_in_sql_not_python(engine: Engine, run: Run) -> None:
    """The message showed Python's repr: `(k)=(Decimal('1.50'))`,
    `datetime.date(2024, 1, 1)`, whether the first row was buffered or flushed."""
    engine.create_table("app", "m", "shared", [col("k", "DECIMAL", 10, 2, primary_key=True)])
    engine.create_table("app", "d", "shared", [col("k", "DATE", primary_key=True),
                                               col("v", "TEXT")])
    run("INSERT INTO app.m VALUES (1.5)")
    run("INSERT INTO app.d VALUES ('2024-01-01', 'it''s')")
    for _flushed in (False, True):  # buffered, then flushed
        with pytest.raises(AlreadyExists, match=r"\(k\)=\(1\.50\) in table app\.m"):
            run("INSERT INTO app.m VALUES (1.50)")
        with pytest.raises(AlreadyExists, match=r"\(k\)=\('2024-01-01'\) in table app\.d"):
            run("INSERT INTO app.d VALUES ('2024-01-01', 'x')")
        engine.flush_table("app", "m")
        engine.flush_table("app", "d")
    engine.create_table("app", "s", "shared", [col("k", "TIMESTAMP", primary_key=True)])
    with pytest.raises(AlreadyExists, match=r"\(k\)=\('2024-02-01 00:00:00'\) in rows 1 and 2"):
        run("INSERT INTO app.s VALUES (TIMESTAMP '2024-02-01'), (TIMESTAMP '2024-02-01')")
