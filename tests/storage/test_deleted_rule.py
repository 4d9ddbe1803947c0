"""Soft-deleted rows, per table reference (docs/sql.md): a table shows its
deleted rows only where a WHERE names ITS `_deleted`; a SELECT and the row
lookup of an UPDATE or DELETE (whose target shows live rows only) follow the
one rule, and so does the query of an INSERT ... SELECT."""

from __future__ import annotations

import pytest

from storage.engine import Engine

from .conftest import Run, col


def _setup(engine: Engine, run: Run, kind: str, user: str | None) -> None:
    for name in ("a", "b", "c"):
        engine.create_table("app", name, kind, [col("k", primary_key=True), col("v")])
    run("INSERT INTO app.a VALUES (1, 1), (2, 2), (3, 3)", user=user)
    run("INSERT INTO app.b VALUES (1, 1), (2, 2)", user=user)
    run("DELETE FROM app.b WHERE k = 1", user=user)
    run("DELETE FROM app.a WHERE k = 3", user=user)


KS = [
    ("SELECT k FROM a WHERE _deleted", [3]),
    ("SELECT k FROM a WHERE k IN (SELECT k FROM b WHERE _deleted = true)", [1]),
    ("SELECT k FROM a WHERE k NOT IN (SELECT k FROM b WHERE _deleted)", [2]),
    ("SELECT k FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b._deleted)", [1]),
    ("SELECT k FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k) OR a._deleted", [2, 3]),
    ("SELECT a.k FROM a JOIN b ON a.k = b.k WHERE b._deleted", [1]),
    ("SELECT a.k FROM a JOIN b ON a.k = b.k WHERE a._deleted", []),
    ("SELECT a.k FROM a JOIN b ON a.k = b.k WHERE NOT b._deleted", [2]),
    ("SELECT k FROM (SELECT * FROM a) s WHERE s._deleted", [3]),
    ("SELECT k FROM (SELECT k, _deleted FROM a) AS s WHERE _deleted", [3]),
    ("SELECT k FROM (SELECT k, false AS _deleted FROM a) AS s WHERE NOT _deleted", [1, 2]),
    ("WITH d AS (SELECT * FROM b) SELECT k FROM d WHERE _deleted", [1]),
    ("WITH d AS (SELECT * FROM b) SELECT k FROM a WHERE k IN (SELECT k FROM d WHERE _deleted)",
     [1]),
    ("SELECT k FROM a WHERE k IN (SELECT k FROM a WHERE _deleted) OR v > 1", [2]),
]


@pytest.mark.parametrize("kind,user", [("shared", None), ("user", "ann")])
def test_each_table_shows_its_deleted_rows_where_its_deleted_is_named(
        engine: Engine, run: Run, kind: str, user: str | None) -> None:
    _setup(engine, run, kind, user)
    for q, ks in KS:
        got = run(f"SELECT k FROM ({q}) ORDER BY k", user=user, namespace="app")
        assert [r["k"] for r in got] == ks, q


WHERES = [
    "k IN (SELECT k FROM b WHERE _deleted = true)",
    "k NOT IN (SELECT k FROM b WHERE _deleted)",
    "EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b._deleted)",
    "EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND NOT _deleted)",
    "k IN (SELECT k FROM (SELECT * FROM b) s WHERE s._deleted)",
]


@pytest.mark.parametrize("kind,user", [("shared", None), ("user", "ann")])
@pytest.mark.parametrize("where", WHERES)
@pytest.mark.parametrize("write", ["update", "delete", "insert"])
def test_writes_match_the_rows_a_select_finds(engine: Engine, run: Run, kind: str,
                                              user: str | None, where: str, write: str) -> None:
    _setup(engine, run, kind, user)
    found = run(f"SELECT k, v FROM a WHERE {where} ORDER BY k", user=user)
    statement = {"update": f"UPDATE a SET v = 99 WHERE {where}",
                 "delete": f"DELETE FROM a WHERE {where}",
                 "insert": f"INSERT INTO c SELECT k, v FROM a WHERE {where}"}[write]
    assert run(statement, user=user) == len(found)
    if write == "insert":
        assert run("SELECT k, v FROM c ORDER BY k", user=user) == found
    else:
        left = {r["k"] for r in run("SELECT k FROM a", user=user)}
        assert left == {1, 2} - ({r["k"] for r in found} if write == "delete" else set())


def test_an_update_or_delete_changes_live_rows_only(engine: Engine, run: Run) -> None:
    _setup(engine, run, "shared", None)
    assert run("UPDATE a SET v = 0 WHERE _deleted") == 0
    assert run("DELETE FROM a WHERE _deleted OR k = 2") == 1
    assert run("SELECT k, v FROM a WHERE _deleted ORDER BY k") == [
        {"k": 2, "v": 2}, {"k": 3, "v": 3}]
    assert run("SELECT k, v FROM a") == [{"k": 1, "v": 1}]


@pytest.mark.parametrize("from_first", [False, True])
def test_a_using_join_written_from_first_hides_deleted_rows_as_select_first(
        engine: Engine, run: Run, from_first: bool) -> None:
    """`FROM a RIGHT JOIN b USING (k, _deleted) JOIN c … SELECT *`: sqlglot
    hangs the joins on the table, so the rule missed the USING, spread `*` as
    if nothing merged, took `_deleted_1` (c's flag, to DuckDB) for b's and
    showed b's deleted row; an INSERT … SELECT copied it as live."""
    for name in ("a", "b", "c"):
        engine.create_table("app", name, "shared", [col("k", primary_key=True), col("v")])
        run(f"INSERT INTO app.{name} VALUES (1, 1), (2, 2), (3, 3)")
    run("DELETE FROM app.b WHERE k = 3")
    inner = ("FROM a RIGHT JOIN b USING (k, _deleted) JOIN c ON c.k = b.k SELECT *" if from_first
             else "SELECT * FROM a RIGHT JOIN b USING (k, _deleted) JOIN c ON c.k = b.k")
    got = run(f"SELECT k FROM ({inner}) WHERE NOT _deleted_1 ORDER BY k", namespace="app")
    assert [r["k"] for r in got] == [1, 2]
    engine.create_table("app", "dst", "shared", [col("k", primary_key=True), col("v")])
    run(f"INSERT INTO dst SELECT k, 0 FROM ({inner}) WHERE NOT _deleted_1", namespace="app")
    assert [r["k"] for r in run("SELECT k FROM app.dst ORDER BY k")] == [1, 2]


def test_an_aggregates_filter_is_no_where_of_the_query(engine: Engine, run: Run) -> None:
    """`count(*) FILTER (WHERE _deleted)` turned deleted rows on for the whole
    query level: the other aggregates counted them, the rows were listed, and
    an INSERT … SELECT copied a deleted row as a live one."""
    _setup(engine, run, "shared", None)
    got = run("SELECT count(*) AS live, count(*) FILTER (WHERE _deleted) AS d FROM app.a")
    assert got == [{"live": 2, "d": 0}]
    got = run("SELECT k, count(*) FILTER (WHERE _deleted) OVER () AS x FROM app.a ORDER BY k")
    assert [r["k"] for r in got] == [1, 2]
    run("INSERT INTO app.c SELECT k, v FROM app.a "
        "QUALIFY count(*) FILTER (WHERE _deleted) OVER () >= 0")
    assert [r["k"] for r in run("SELECT k FROM app.c ORDER BY k")] == [1, 2]
    # named in the query's own WHERE, deleted rows are there for the FILTER too
    got = run("SELECT count(*) FILTER (WHERE _deleted) AS d FROM app.a WHERE _deleted OR true")
    assert got == [{"d": 1}]
