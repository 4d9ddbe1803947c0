"""Point lookups answered without DuckDB (storage/direct.py) must give exactly
what DuckDB gives: the same rows, column names and Arrow types. The model is
the same engine with the direct answer switched off."""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlglot

from storage import direct
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


def test_direct_answers_equal_duckdb(engine: Engine, run: Run,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "t", "shared", [
        col("id", "BIGINT", primary_key=True), col("i"), col("s", "SMALLINT"), col("r", "REAL"),
        col("d", "DOUBLE"), col("b", "BOOLEAN"), col("t", "TEXT"), col("y", "BYTES"),
        col("dt", "DATE"), col("ts", "TIMESTAMP"), col("j", "JSON"), col("n", "DECIMAL", 10, 2)])
    run("INSERT INTO app.t VALUES (1, 1, 2, 1.5, 2.25, true, 'one', '\\x01', '2026-01-02', "
        "'2026-01-02 03:04:05', '{\"a\": 1}', 1.25)")
    run("INSERT INTO app.t (id, t) VALUES (2, 'two')")
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
    for (q, rows, schema), (_, rows2, schema2) in zip(fast, slow, strict=True):
        assert rows == rows2, q
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in schema2], q


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
