"""A FROM item that renames a table's columns, an alias's column list
(`FROM ns.t AS x(kk, k)`: `k` is the table's second column) or an UNPIVOT
(`UNPIVOT (k FOR n IN (k, a))`: `k` holds both columns' values), binds names
as DuckDB binds them: no shortcut that reads names by the table's own (the
point lookup's key cut, the key filter, the direct answer) takes `k` for the
key, and the `_deleted` rule follows the names by position. The model is
DuckDB itself, in process, over a plain table holding the same rows."""

from __future__ import annotations

import itertools
from typing import Any

import duckdb
import pytest
import sqlglot

from catalog.errors import ParseError
from storage.engine import Engine
from storage.json_columns import CAIRN_TYPE

from .conftest import Run, col

KEYS = [
    "SELECT kk, k FROM app.t AS x(kk, k) WHERE k = 1",
    "SELECT kk, k FROM app.t AS x(kk, k) WHERE k IN (1, 7)",
    "SELECT kk, k FROM app.t AS x(kk, k) WHERE k > 1",
    "SELECT kk, k FROM app.t x(kk, k) WHERE x.k = 1 AND kk > 0",
    "SELECT count(*) AS n FROM app.t x(kk, k) WHERE k = 1",
    "SELECT kk FROM app.t AS x(kk) WHERE kk = 2",
    "SELECT a, k FROM app.t AS x(a, k) WHERE a = 2",
    "SELECT n, k FROM app.t UNPIVOT (k FOR n IN (k, a)) WHERE k = 1",
    "SELECT n, k FROM app.t UNPIVOT (k FOR n IN (k, a)) WHERE k IN (1, 9)",
    "SELECT n, v FROM app.t UNPIVOT (v FOR n IN (k, a)) WHERE v = 1",
]


def _model(q: str, rows: list[tuple[Any, ...]], schema: str) -> list[tuple[Any, ...]]:
    model = duckdb.connect()
    model.execute(f"CREATE SCHEMA app; CREATE TABLE app.t ({schema})")
    model.executemany(f"INSERT INTO app.t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return sorted(model.execute(q).fetchall())


def _rows(engine: Engine, q: str, user: str | None) -> list[tuple[Any, ...]]:
    got = engine.query(sqlglot.parse_one(q, read="duckdb"), user, "app").to_pylist()
    return sorted(tuple(r.values()) for r in got)


@pytest.mark.parametrize("kind,user", [("shared", None), ("user", "ann")])
@pytest.mark.parametrize("flushed", [False, True])
def test_a_renamed_column_is_not_the_key(engine: Engine, run: Run, kind: str,
                                         user: str | None, flushed: bool) -> None:
    rows = [(1, 2), (2, 1), (3, 3)]
    for name in ("t", "u"):
        engine.create_table("app", name, kind, [col("k", primary_key=True), col("a")])
    run("INSERT INTO app.t VALUES (1, 2), (2, 1), (3, 3)", user=user)
    if user is not None:  # another user's rows, which the queries must not see
        run("INSERT INTO app.t VALUES (4, 1), (1, 1)", user="other")
    if flushed:
        engine.flush_table("app", "t")
    for q in KEYS:
        assert _rows(engine, q, user) == _model(q, rows, "k INT PRIMARY KEY, a INT"), q
    for names in itertools.permutations(["k", "a", "kk"], 2):  # every renaming of k and a
        for name in names:
            for where in (f"{name} = 1", f"x.{name} IN (1, 3)", f"{name} > 1"):
                q = f"SELECT {', '.join(names)} FROM app.t AS x({', '.join(names)}) WHERE {where}"
                assert _rows(engine, q, user) == _model(q, rows, "k INT PRIMARY KEY, a INT"), q
    n = run("INSERT INTO app.u SELECT kk, k FROM app.t AS x(kk, k) WHERE k = 1", user=user)
    assert n == 1
    assert run("SELECT k, a FROM app.u", user=user) == [{"k": 2, "a": 1}]


DIRECT = [
    "SELECT j FROM app.t AS x(k, s, j) WHERE k = 1",
    "SELECT a FROM app.t AS x(k, j, s, b, a) WHERE k = 1",
    "SELECT b, k FROM app.t AS x(k, j, s, b) WHERE k = 1",
    "SELECT x.k, x.j FROM app.t AS x(k, s, j) WHERE x.k = 1",
]


@pytest.mark.parametrize("kind,user", [("shared", None), ("user", "ann")])
@pytest.mark.parametrize("flushed", [False, True])
def test_a_direct_answer_reads_columns_by_the_alias(engine: Engine, run: Run, kind: str,
                                                    user: str | None, flushed: bool) -> None:
    """`SELECT j FROM t AS x(k, s, j)` is the table's `s`: its text, and not
    marked JSON; off the buffer and off a flushed file's cached table alike."""
    engine.create_table("app", "t", kind, [
        col("k", primary_key=True), col("j", "JSON"), col("s", "TEXT"), col("a"), col("b")])
    engine.create_table("app", "u", kind, [col("k", primary_key=True), col("t", "TEXT")])
    run("INSERT INTO app.t VALUES (1, '{\"a\":1}', 'hello', 10, 20)", user=user)
    if flushed:
        engine.flush_table("app", "t")
    rows = [(1, '{"a":1}', "hello", 10, 20)]
    schema = "k INT PRIMARY KEY, j VARCHAR, s VARCHAR, a INT, b INT"
    for q in DIRECT:
        assert _rows(engine, q, user) == _model(q, rows, schema), q
    t = engine.query(sqlglot.parse_one(DIRECT[0], read="duckdb"), user, "app")
    assert not t.schema.field("j").metadata or CAIRN_TYPE not in t.schema.field("j").metadata
    t = engine.query(sqlglot.parse_one("SELECT s FROM app.t AS x(k, s) WHERE k = 1",
                                       read="duckdb"), user, "app")
    assert t.schema.field("s").metadata[CAIRN_TYPE] == b"JSON"  # the table's j
    assert run("INSERT INTO app.u SELECT k, j FROM app.t AS x(k, s, j) WHERE k = 1",
               user=user) == 1
    assert run("SELECT k, t FROM app.u", user=user) == [{"k": 1, "t": "hello"}]


# The view's columns are the table's, then `_updated` and `_deleted`: in
# `x(k, f, u, d)` `d` is the table's `_deleted`; in `x(k, _deleted)` the name
# is the table's `flag`. Row 2 is deleted (flag true), row 3 has flag false.
DELETED = [
    ("SELECT k FROM app.t AS x(k, _deleted, u, d) WHERE _deleted", [1]),
    ("SELECT k FROM app.t AS x(k, _deleted, u, d) WHERE x._deleted", [1]),
    ("SELECT k FROM app.t AS x(k, _deleted) WHERE _deleted", [1]),
    ("SELECT k FROM app.t AS x(k, f, u, d) WHERE d", [2]),
    ("SELECT k FROM app.t AS x(k, f, u, d) WHERE x.d OR k = 3", [2, 3]),
    ("SELECT kk AS k FROM app.t AS x(kk) WHERE _deleted", [2]),
    ("SELECT k FROM app.t AS x(k, f) WHERE _deleted", [2]),
    ("SELECT k FROM app.t AS x(k, f, u, d) WHERE NOT d", [1, 3]),
    ("SELECT k FROM app.t AS x(k, f, u, d) WHERE f", [1]),
    ("SELECT k FROM (SELECT * FROM app.t AS x(k, f, u, d)) s WHERE d", [2]),
    ("SELECT k FROM (SELECT k, d AS _deleted FROM app.t AS x(k, f, u, d)) s WHERE _deleted",
     [2]),
    ("SELECT k FROM (SELECT * FROM app.t) AS s(k, _deleted, u, d) WHERE _deleted", [1]),
    ("SELECT k FROM (SELECT * FROM app.t) AS s(k, f, u, d) WHERE d", [2]),
    ("WITH c(k, f, u, d) AS (SELECT * FROM app.t) SELECT k FROM c WHERE d", [2]),
    ("WITH c AS (SELECT * FROM app.t) SELECT k FROM c AS y(k, _deleted) WHERE _deleted", [1]),
    ("SELECT k FROM app.t WHERE k IN (SELECT kk FROM app.t AS x(kk, f, u, d) WHERE d)", []),
    ("SELECT k FROM app.t AS x(k, f, u, d) WHERE k IN (SELECT k FROM app.t WHERE f)", [1]),
    # A subquery's repeated names are DuckDB's `_deleted`, `_deleted_1`: the first is a's.
    ("SELECT s.k FROM (SELECT * FROM app.t AS a JOIN app.t AS b ON a.k = b.k) s "
     "WHERE _deleted", []),
    ("SELECT s.k FROM (SELECT * FROM app.t AS a, app.t AS b WHERE a.k = b.k + 1) s "
     "WHERE _deleted_1", [3]),
    ("SELECT k FROM (SELECT * FROM app.t AS a JOIN app.t AS b ON a.k = b.k) "
     "AS s(k, f, u, d, k2, f2, u2, d2) WHERE d2 OR k = 1", [1]),
    ("SELECT k FROM (SELECT * FROM app.t AS a, app.t AS b WHERE a.k = b.k + 1) "
     "AS s(k, f, u, d, k2, f2, u2, d2) WHERE d2", [3]),
    # An UNPIVOT's value column named `_deleted` is DuckDB's `_deleted_1`.
    ("SELECT k FROM app.t UNPIVOT (_deleted FOR n IN (flag)) WHERE _deleted", [2]),
    ("SELECT k FROM app.t AS x(k, f, u, d) UNPIVOT (v FOR n IN (f)) WHERE d", [2]),
]


@pytest.mark.parametrize("kind,user", [("shared", None), ("user", "ann")])
@pytest.mark.parametrize("flushed", [False, True])
def test_the_deleted_rule_follows_an_alias_column_list(engine: Engine, run: Run, kind: str,
                                                       user: str | None, flushed: bool) -> None:
    engine.create_table("app", "t", kind, [col("k", primary_key=True), col("flag", "BOOLEAN")])
    engine.create_table("app", "c", kind, [col("k", primary_key=True)])
    run("INSERT INTO app.t VALUES (1, true), (2, true), (3, false)", user=user)
    run("DELETE FROM app.t WHERE k = 2", user=user)
    if flushed:
        engine.flush_table("app", "t")
    for q, ks in DELETED:
        got = run(f"SELECT k FROM ({q}) ORDER BY k", user=user)
        assert [r["k"] for r in got] == ks, q
    # An INSERT ... SELECT copies what the SELECT finds: not the deleted row as live.
    n = run("INSERT INTO app.c SELECT k FROM app.t AS x(k, _deleted, u, d) WHERE _deleted",
            user=user)
    assert n == 1
    assert run("SELECT k FROM app.c", user=user) == [{"k": 1}]


@pytest.mark.parametrize("statement", ["UPDATE app.t AS x(kk, k) SET a = 0 WHERE k = 1",
                                       "DELETE FROM app.t AS x(kk, k) WHERE k = 1"])
def test_the_table_an_update_or_delete_changes_takes_no_column_list(
        engine: Engine, run: Run, statement: str) -> None:
    """DuckDB's parser refuses it; the rows' columns were read by the table's
    names, which the list had changed (a KeyError: 500 INTERNAL)."""
    engine.create_table("app", "t", "shared", [col("k", primary_key=True), col("a")])
    run("INSERT INTO app.t VALUES (1, 2), (2, 1)")
    with pytest.raises(ParseError, match="column list"):
        run(statement)
    assert run("SELECT k, a FROM app.t ORDER BY k") == [{"k": 1, "a": 2}, {"k": 2, "a": 1}]
    assert run("UPDATE app.t AS x SET a = 0 WHERE x.k = 1") == 1
    assert run("DELETE FROM app.t AS x WHERE x.k = 2") == 1


@pytest.mark.parametrize("q", [
    "SELECT j, s FROM app.t AS x(k, s, j)",
    "SELECT j, s FROM app.t AS x(k, s, j) JOIN app.u USING (k)",  # by name: a guess
    "SELECT * EXCLUDE (k, _updated, _deleted) FROM app.t AS x(k, s, j)",
])
def test_a_json_column_goes_by_the_alias_name(engine: Engine, run: Run, q: str) -> None:
    """`x(k, s, j)`: `s` is the table's JSON column and `j` its TEXT one, also
    where the answer's JSON columns are guessed by name (a USING join, an
    EXCLUDE): 'hello' was marked JSON and the JSON column was not."""
    engine.create_table("app", "t", "shared", [
        col("k", primary_key=True), col("j", "JSON"), col("s", "TEXT")])
    engine.create_table("app", "u", "shared", [col("k", primary_key=True)])
    run("INSERT INTO app.t VALUES (1, '{\"a\":1}', 'hello')")
    run("INSERT INTO app.u VALUES (1)")
    t = engine.query(sqlglot.parse_one(q, read="duckdb"), None, "app")
    assert t.to_pylist() == [{"j": "hello", "s": '{"a":1}'}]
    marks = {f.name: (f.metadata or {}).get(CAIRN_TYPE) for f in t.schema}
    assert marks == {"j": None, "s": b"JSON"}


QUALIFIED = [
    "SELECT k, (SELECT t.v FROM (SELECT 1 AS k, 5 AS v) AS t(kk)) AS m FROM app.t",
    "SELECT k, (SELECT max(t.v) FROM (SELECT 1 AS k, 5 AS v) AS t(kk)) AS m FROM app.t",
    "SELECT k, (SELECT max(t.v) FROM app.t AS t(kk) WHERE t.kk = 1) AS m FROM app.t",
    "WITH c(a) AS (SELECT 1 AS k, 5 AS v) SELECT k, (SELECT t.v FROM c AS t) AS m FROM app.t",
    "SELECT k, (SELECT t.kk FROM app.t AS t(kk) WHERE t.v = 20) AS m FROM app.t",
]


@pytest.mark.parametrize("q", QUALIFIED)
def test_a_short_column_list_leaves_the_other_columns_their_names(
        engine: Engine, run: Run, q: str) -> None:
    """`t AS x(kk)` renames t's first column only: `t.v` of a subquery
    `AS t(kk)` is its own v, not that of an outer table t (it was taken for
    the outer one: the outer row's v, or DuckDB's GROUP BY error)."""
    engine.create_table("app", "t", "shared", [col("k", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 10), (2, 20)")
    assert _rows(engine, q, None) == _model(q, [(1, 10), (2, 20)], "k INT PRIMARY KEY, v INT")
