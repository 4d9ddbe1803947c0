"""A SELECT item that reads a table and has no alias is named by its text as
written, not by DuckDB's text of the rewritten query (the views' SQL, with
the data files' paths and the placeholders' names)."""

from __future__ import annotations

import sqlglot

from storage.engine import Engine

from .conftest import Run, col


def test_unaliased_subqueries_are_named_by_their_text(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("k", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 10), (2, 20)")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t VALUES (3, 30)")
    for q, want in [
        ("SELECT (SELECT count(*) FROM t) FROM t WHERE k = 1", [3]),
        ("SELECT k, (SELECT max(v) FROM t AS x WHERE x.k < t.k) FROM t ORDER BY k",
         [1, None, 2, 10, 3, 20]),
        ("SELECT * FROM (SELECT EXISTS (SELECT 1 FROM t WHERE v > 25)) AS s", [True]),
        ("SELECT 1 IN (SELECT k FROM t)", [True]),
    ]:
        table = engine.query(sqlglot.parse_one(q, read="duckdb"), None, "app")
        for name in table.column_names:
            assert "__cairn" not in name and "read_parquet" not in name and "/" not in name, q
        assert [v for r in table.to_pylist() for v in r.values()] == want, q
    table = engine.query(sqlglot.parse_one("SELECT (SELECT count(*) FROM app.t)", read="duckdb"),
                         None, "app")
    assert table.column_names == ["(SELECT COUNT(*) FROM app.t)"]
    # A subquery given its alias as a subquery's own (sqlglot's alias_) keeps it.
    subquery = sqlglot.parse_one("SELECT (SELECT max(v) FROM app.t)", read="duckdb").expressions[0]
    table = engine.query(sqlglot.exp.select(sqlglot.exp.alias_(subquery, "c0")), None, "app")
    assert table.to_pylist() == [{"c0": 30}]
    engine.create_table("app", "u", "shared", [col("k", primary_key=True), col("v")])
    assert run("INSERT INTO app.u VALUES (1, (SELECT max(v) FROM app.t))") == 1
