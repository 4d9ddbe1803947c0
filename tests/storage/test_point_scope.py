"""A point lookup cuts a table's snapshot to one key only when the WHERE's
`key = literal` is on the table's own column at the level where the table is
the FROM (storage/query.py `point_key`). Over a derived table, a CTE, a scalar
subquery or a UNION the outer `k` is another thing's column: the model is the
same query with `k = 1 + 0`, which no shortcut reads."""

from __future__ import annotations

import pytest

from storage.engine import Engine

from .conftest import Run, col

QUERIES = [
    "SELECT * FROM (SELECT k + 1 AS k, v FROM app.t) AS s WHERE k = {one}",
    "SELECT * FROM (SELECT v AS k, k AS orig FROM app.t) AS s WHERE k = {one}",
    "SELECT * FROM (SELECT k + 1 AS k, v FROM app.t) WHERE k = {one}",
    "WITH t AS (SELECT k + 1 AS k, v FROM app.t) SELECT * FROM t WHERE k = {one}",
    "WITH s AS (SELECT v AS k FROM app.t) SELECT k FROM s WHERE k = {one}",
    "SELECT (SELECT count(*) FROM app.t) AS n FROM (SELECT 1 AS k) x WHERE k = {one}",
    "SELECT (SELECT max(v) FROM app.t) AS n WHERE 1 = {one}",
    "SELECT * FROM (SELECT k + 1 AS k, v FROM app.t UNION ALL SELECT 7, 7) s WHERE k = {one}",
    "SELECT k, v FROM app.t WHERE k = {one} UNION ALL SELECT k + 1, v FROM app.t WHERE k = 0",
    "SELECT * FROM (SELECT k - 4 AS k, v FROM app.t) s WHERE s.k = {one}",
]


@pytest.mark.parametrize("flushed", [False, True])
def test_a_key_of_a_derived_table_cuts_nothing(engine: Engine, run: Run, flushed: bool) -> None:
    engine.create_table("app", "t", "shared", [col("k", primary_key=True), col("v")])
    engine.create_table("app", "copy", "shared", [col("k", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (0, 100), (5, 1)")
    if flushed:  # the file's key range and filter leave key 1 out
        engine.flush_table("app", "t")
    for q in QUERIES:
        model = run(q.format(one="1 + 0"))
        assert model, q  # every query finds a row
        assert run(q.format(one="1")) == model, q
    assert run("SELECT * FROM (SELECT k + 1 AS k, v FROM app.t) s WHERE k = 1") == [
        {"k": 1, "v": 100}]
    assert run("SELECT * FROM (SELECT v AS k, k AS orig FROM app.t) s WHERE k = 1") == [
        {"k": 1, "orig": 5}]
    n = run("INSERT INTO app.copy SELECT * FROM (SELECT k + 1 AS k, v FROM app.t) s WHERE k = 1")
    assert n == 1
    assert run("SELECT k, v FROM app.copy") == [{"k": 1, "v": 100}]
    # The table's own key still makes a point lookup, and answers it.
    assert run("SELECT v FROM app.t WHERE k = 5") == [{"v": 1}]
    assert run("SELECT v FROM app.t AS x WHERE x.k = 0") == [{"v": 100}]
