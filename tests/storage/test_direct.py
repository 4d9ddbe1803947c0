"""Point lookups answered without DuckDB (storage/direct.py) must give exactly
what DuckDB gives: the same rows, column names and Arrow types. The model is
the same engine with the direct answer switched off."""

from __future__ import annotations

import random
from collections.abc import Callable

import pyarrow as pa
import pytest
import sqlglot

from catalog.errors import AlreadyExists
from storage import direct, keys, query
from storage.engine import Engine

from .conftest import Run, col

QUERIES = [
    "SELECT id, i, s, r, d, b, t, y, dt, ts, j, n FROM app.t WHERE id = {k}",
    "SELECT t, id FROM app.t WHERE id = {k}",
    "SELECT x.id, x.t FROM app.t AS x WHERE x.id = {k}",
    "SELECT id, t FROM app.t WHERE ({k} = id)",
    "SELECT id, _deleted FROM app.t WHERE id = {k} AND _deleted",
    "SELECT id, t FROM app.t WHERE id = {k} AND i > 0",
    "SELECT id, t FROM app.t WHERE id = {k} AND id = 99",
    "SELECT id, t FROM app.t WHERE id = {k} AND id = 2.5",
    "SELECT id, t FROM app.t WHERE id = '{k}'",
    "SELECT id AS x, t FROM app.t WHERE id = {k}",
    "SELECT id, id FROM app.t WHERE id = {k}",
    "SELECT count(*) AS c FROM app.t WHERE id = {k}",
    "SELECT id, t FROM app.t WHERE id = {k} LIMIT 0",
    "SELECT DISTINCT id FROM app.t WHERE id = {k}",
    "SELECT id, t FROM app.t WHERE id = -{k}",
    "SELECT id FROM app.t WHERE id = {k} UNION ALL SELECT id FROM app.t WHERE id = {k}",
]


def _answers(engine: Engine, user: str | None = None) -> list[tuple[str, list, pa.Schema]]:
    out = []
    for q in QUERIES:
        for k in (1, 2, 3, 4, 5):
            e = sqlglot.parse_one(q.format(k=k), read="duckdb")
            t = engine.query(e, user, "app")
            out.append((q.format(k=k), t.to_pylist(), t.schema))
    return out


def _typed_table(run: Run, engine: Engine) -> None:
    """app.t with a column of each type a point lookup may read, and keys 1-2."""
    engine.create_table("app", "t", "shared", [
        col("id", "BIGINT", primary_key=True), col("i"), col("s", "SMALLINT"), col("r", "REAL"),
        col("d", "DOUBLE"), col("b", "BOOLEAN"), col("t", "TEXT"), col("y", "BYTES"),
        col("dt", "DATE"), col("ts", "TIMESTAMP"), col("j", "JSON"), col("n", "DECIMAL", 10, 2)])
    run("INSERT INTO app.t VALUES (1, 1, 2, 1.5, 2.25, true, 'one', '\\x01', '2026-01-02', "
        "'2026-01-02 03:04:05', '{\"a\": 1}', 1.25)")
    run("INSERT INTO app.t (id, t) VALUES (2, 'two')")


def _same_answers(fast: list[tuple[str, list, pa.Schema]],
                  slow: list[tuple[str, list, pa.Schema]]) -> None:
    for (q, rows, schema), (_, rows2, schema2) in zip(fast, slow, strict=True):
        assert rows == rows2, q
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in schema2], q


def test_direct_answers_equal_duckdb(engine: Engine, run: Run,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _typed_table(run, engine)
    run("INSERT INTO app.t (id, i, t) VALUES (3, 3, 'three')")
    run("INSERT INTO app.t (id, i, t) VALUES (4, 4, 'four')")
    run("UPDATE app.t SET t = 'THREE' WHERE id = 3")
    run("DELETE FROM app.t WHERE id = 4")
    before = sum(engine.duckdb_runs.values())
    fast = _answers(engine)
    used = len(fast) - (sum(engine.duckdb_runs.values()) - before)
    assert used >= 10  # the simple lookups of keys 1-5 did not reach DuckDB
    monkeypatch.setattr(direct, "answer", lambda *a: None)
    slow = _answers(engine)
    _same_answers(fast, slow)


def test_direct_answers_user_table_and_text_key(engine: Engine, run: Run,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "u", "user", [col("k", "TEXT", primary_key=True), col("v")])
    run("INSERT INTO app.u VALUES ('a', 1)", user="ann")
    run("INSERT INTO app.u VALUES ('a', 2)", user="bo")
    queries = ["SELECT k, v FROM app.u WHERE k = 'a'", "SELECT v FROM app.u WHERE k = 'b'"]

    def answers() -> list[list]:
        return [engine.query(sqlglot.parse_one(q, read="duckdb"), user, "app").to_pylist()
                for q in queries for user in ("ann", "bo", "cy")]

    fast = answers()
    monkeypatch.setattr(direct, "answer", lambda *a: None)
    assert fast == answers()
    assert fast[0] == [{"k": "a", "v": 1}] and fast[1] == [{"k": "a", "v": 2}]


def _point_workload(engine: Engine, run: Run, seed: int,
                    check: Callable[[list[int]], None]) -> None:
    """A seeded mix of writes over a shared table with an integer key and a
    USER table with a text key: new keys, multi-row INSERTs, UPDATEs (new
    versions), DELETEs (soft deletes), re-INSERTs of deleted keys, flushes
    (buffer + files, a stale key index) and an ADD COLUMN (batches of two
    schema versions); `check(some keys)` every few steps."""
    rng = random.Random(seed)
    for step in range(90):
        op = rng.random()
        k = rng.randrange(12)
        user = rng.choice(("ann", "bo"))
        try:
            if op < 0.3:
                run(f"INSERT INTO app.s (id, v, t) VALUES ({k}, {step}, 's{step}')")
            elif op < 0.4:
                ks = rng.sample(range(12), 3)
                run("INSERT INTO app.s (id, v) VALUES " + ", ".join(f"({x}, {step})" for x in ks))
            elif op < 0.5:
                run(f"UPDATE app.s SET v = v + 1 WHERE id = {k}")
            elif op < 0.6:
                run(f"DELETE FROM app.s WHERE id = {k}")
            elif op < 0.75:
                run(f"INSERT INTO app.u (k, v) VALUES ('k{k}', {step})", user=user)
            elif op < 0.82:
                run(f"UPDATE app.u SET v = v * 2 WHERE k = 'k{k}'", user=user)
            elif op < 0.9:
                run(f"DELETE FROM app.u WHERE k = 'k{k}'", user=user)
            elif op < 0.96:
                engine.flush_table("app", rng.choice(("s", "u")))
        except AlreadyExists:
            pass
        if step == 45:
            engine.add_column("app", "s", col("w", "INT"))
            run("INSERT INTO app.s (id, v, w) VALUES (100, 1, 7)")
        if step % 15 == 14:
            check(rng.sample(range(13), 5))


@pytest.mark.parametrize("seed,limit", [(1, None), (2, 5)])
def test_point_lookups_equal_the_full_scan(engine: Engine, run: Run, seed: int,
                                           limit: int | None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: every point SELECT (key index, buffer cut to the key's
    batches, direct answer) gives exactly what DuckDB gives over the whole
    buffer and every file with point pruning switched off."""
    if limit is not None:  # the key index gives up past its limit: whole-buffer path
        monkeypatch.setattr(keys, "KEYSET_LIMIT", limit)
    engine.create_table("app", "s", "shared", [col("id", "BIGINT", primary_key=True), col("v"),
                                               col("t", "TEXT")])
    engine.create_table("app", "u", "user", [col("k", "TEXT", primary_key=True), col("v")])
    shapes = ["SELECT id, v, t FROM app.s WHERE id = {k}", "SELECT * FROM app.s WHERE id = {k}",
              "SELECT id, _deleted FROM app.s WHERE id = {k} AND _deleted"]
    checked = [0]

    def answers(some: list[int]) -> list[tuple[str, str | None, list, list]]:
        out = []
        for k in [-1, *some]:
            for shape in shapes:
                q = shape.format(k=k)
                t = engine.query(sqlglot.parse_one(q, read="duckdb"), None, "app")
                out.append((q, None, t.to_pylist(), [(f.name, f.type) for f in t.schema]))
            for user in ("ann", "bo", "cy"):
                q = f"SELECT k, v FROM app.u WHERE k = 'k{k}'"
                t = engine.query(sqlglot.parse_one(q, read="duckdb"), user, "app")
                out.append((q, user, t.to_pylist(), [(f.name, f.type) for f in t.schema]))
        return out

    def check(some: list[int]) -> None:
        fast = answers(some)
        with monkeypatch.context() as m:
            m.setattr(query, "point_key", lambda *a: None)
            slow = answers(some)
        assert fast == slow
        checked[0] += 1

    _point_workload(engine, run, seed, check)
    assert checked[0] == 6


def test_point_lookup_reads_only_the_keys_batches(engine: Engine, run: Run) -> None:
    """With a key index, a point SELECT's snapshot holds the key's buffered
    versions only, however long the buffer."""
    engine.create_table("app", "s", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    for i in range(50):
        run(f"INSERT INTO app.s VALUES ({i}, {i})")
    run("UPDATE app.s SET v = -1 WHERE id = 7")
    st = engine.state("app", "s")
    e = sqlglot.parse_one("SELECT id, v FROM app.s WHERE id = 7", read="duckdb")
    snap, token = query.take_snapshot(st, None, engine.files, {"id": 7})
    engine.files.unpin(token)
    assert snap.buffer.to_pylist() and [r["v"] for r in snap.buffer.to_pylist()] == [-1]
    assert engine.query(e, None, "app").to_pylist() == [{"id": 7, "v": -1}]
    with st.lock:
        found = st.keys.batches_of([7], st.batches.values(), ["id"], False)
    assert found is not None and len(found) == 2  # the INSERT's batch and the UPDATE's


def _flushed_table(engine: Engine, run: Run) -> None:
    _typed_table(run, engine)
    engine.flush_table("app", "t")  # two files: keys 1-2, then 3-5
    run("INSERT INTO app.t (id, i, t, y) VALUES (3, 3, 'three', '\\x00\\xff'), "
        "(4, -4, NULL, NULL), (5, 5, 'five', '')")
    engine.flush_table("app", "t")


def test_point_lookups_in_files_equal_duckdb(engine: Engine, run: Run,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A point lookup of a flushed row (no buffered version, an append-only
    table) is read off the file's cached table (storage/pointcache.py):
    every query shape over keys in two files, and keys in none, gives what
    DuckDB gives; then an ADD COLUMN (the files predate it: their rows'
    default comes from DuckDB) and an UPDATE (versions to choose between)."""
    _flushed_table(engine, run)
    before = sum(engine.duckdb_runs.values())
    fast = _answers(engine)
    assert len(fast) - (sum(engine.duckdb_runs.values()) - before) >= 10
    assert engine.points.loads == 2 and engine.points.hits > 0
    with monkeypatch.context() as m:
        m.setattr(direct, "answer", lambda *a: None)
        slow = _answers(engine)
    _same_answers(fast, slow)
    assert isinstance(fast[0][1][0]["y"], bytes) and fast[0][1][0]["ts"] is not None

    engine.add_column("app", "t", col("w", "INT"))
    run("INSERT INTO app.t (id, w) VALUES (6, 8)")
    engine.flush_table("app", "t")
    run("UPDATE app.t SET t = 'TWO' WHERE id = 2")
    queries = [f"SELECT id, w, t FROM app.t WHERE id = {k}" for k in (1, 2, 3, 6, 9)]

    def answers() -> list[list]:
        return [engine.query(sqlglot.parse_one(q, read="duckdb"), None, "app").to_pylist()
                for q in queries]

    got = answers()
    with monkeypatch.context() as m:
        m.setattr(direct, "answer", lambda *a: None)
        assert got == answers()
    assert got[0] == [{"id": 1, "w": None, "t": "one"}] and got[1][0]["t"] == "TWO"
    assert got[3] == [{"id": 6, "w": 8, "t": None}] and got[4] == []


def test_point_lookups_in_files_per_user(engine: Engine, run: Run) -> None:
    """A USER table's files are each user's own: one key, three users, each
    answer off its own file (or none)."""
    engine.create_table("app", "u", "user", [col("k", "TEXT", primary_key=True), col("v")])
    run("INSERT INTO app.u VALUES ('a', 1)", user="ann")
    run("INSERT INTO app.u VALUES ('a', 2)", user="bo")
    engine.flush_table("app", "u")
    q = sqlglot.parse_one("SELECT k, v FROM app.u WHERE k = 'a'", read="duckdb")
    got = [engine.query(q.copy(), user, "app").to_pylist() for user in ("ann", "bo", "cy")]
    assert got == [[{"k": "a", "v": 1}], [{"k": "a", "v": 2}], []]
    assert engine.points.loads == 2


def test_point_lookup_in_a_file_waits_off_the_event_loop(engine: Engine, run: Run,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Where waiting is not allowed (a one-row statement on the event loop) a
    file not cached yet is WouldWait, before anything is read; once a
    statement thread has read it, the same lookup is answered there. A cache
    of 0 MiB, or a file over a quarter of it, leaves every lookup to DuckDB."""
    from storage import timing
    from storage.pointcache import PointCache

    _flushed_table(engine, run)
    q = sqlglot.parse_one("SELECT id, t FROM app.t WHERE id = 3", read="duckdb")
    with timing.no_waiting(), pytest.raises(timing.WouldWait, match="a file to read"):
        engine.query(q.copy(), None, "app")
    assert engine.points.loads == 0
    assert engine.query(q.copy(), None, "app").to_pylist() == [{"id": 3, "t": "three"}]
    with timing.no_waiting():
        assert engine.query(q.copy(), None, "app").to_pylist() == [{"id": 3, "t": "three"}]
    for budget in (0, 100):
        monkeypatch.setattr(engine, "points", PointCache(budget))
        before = sum(engine.duckdb_runs.values())
        assert engine.query(q.copy(), None, "app").to_pylist() == [{"id": 3, "t": "three"}]
        assert sum(engine.duckdb_runs.values()) == before + 1 and engine.points.loads == 0
