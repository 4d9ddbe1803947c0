"""An answer's column is JSON by what it is (a table's JSON column, through
aliases, subqueries, CTEs and `*`; a CAST to JSON), not by its name matching
a JSON column of a table the query read (storage/json_columns.py)."""

from __future__ import annotations

import sqlglot

from storage.engine import Engine

from .conftest import Run, col


def _json(engine: Engine, text: str) -> list[bool]:
    table = engine.query(sqlglot.parse_one(text, read="duckdb"), None, "app")
    return [bool(f.metadata) and f.metadata.get(b"cairn.type") == b"JSON" for f in table.schema]


CASES = [
    ("SELECT s AS j FROM t", [False]),
    ("SELECT j AS x FROM t", [True]),
    ("SELECT j AS x, s AS j FROM t", [True, False]),
    ("SELECT t.j AS x, t.s AS j FROM t", [True, False]),
    ("SELECT x.j AS s, x.s AS j FROM t AS x", [True, False]),
    ("SELECT k, j, s FROM t", [False, True, False]),
    ("SELECT * FROM t", [False, True, False, False, False]),
    ("SELECT t.* FROM t", [False, True, False, False, False]),
    ("SELECT y FROM (SELECT j AS y, s AS j FROM t) q", [True]),
    ("SELECT j FROM (SELECT j AS y, s AS j FROM t) q", [False]),
    ("SELECT * FROM (SELECT j AS y, s AS j FROM t) q", [True, False]),
    ("WITH c(a, b) AS (SELECT s, j FROM t) SELECT b AS j, a AS z FROM c", [True, False]),
    ("WITH c AS (SELECT s AS j FROM t) SELECT j FROM c", [False]),
    ("SELECT s::JSON AS c, CAST(s AS JSON) AS d, (j) AS e FROM t", [True, True, True]),
    ("SELECT j FROM t UNION ALL SELECT s FROM t", [False]),
    ("SELECT j FROM t UNION ALL SELECT j FROM t", [True]),
    ("SELECT j || '' AS j FROM t", [False]),
    ("SELECT a.j AS x, b.j AS y FROM t AS a JOIN u AS b ON a.k = b.k", [True, False]),
]


def test_json_columns_by_what_they_are(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("k", primary_key=True), col("j", "JSON"),
                                               col("s", "TEXT")])
    engine.create_table("app", "u", "shared", [col("k", primary_key=True), col("j", "TEXT")])
    run("""INSERT INTO app.t VALUES (1, '[1]', '{"x": 5}')""")
    run("INSERT INTO app.u VALUES (1, 'plain')")
    for q, want in CASES:
        assert _json(engine, q) == want, q
    # Columns the query cannot tell (a join USING merges `*`): by name, as before.
    assert _json(engine, "SELECT * FROM t JOIN t AS v USING (k)")[:2] == [False, True]


def test_a_column_marked_json_by_its_name_alone_says_so(engine: Engine, run: Run) -> None:
    """Where the query's columns cannot be told, a column named like a JSON
    column is marked JSON by that name alone, and BY_NAME says so (pgwire then
    announces text: psycopg failed on `SELECT s AS j ... USING` as json). Not
    where the names tell: a point SELECT's plain columns, a known position."""
    from storage.json_columns import BY_NAME
    engine.create_table("app", "t", "shared", [col("k", primary_key=True), col("j", "JSON"),
                                               col("s", "TEXT")])
    run("""INSERT INTO app.t VALUES (1, '[1]', 'hello')""")

    def by_name(text: str) -> list[bool]:
        table = engine.query(sqlglot.parse_one(text, read="duckdb"), None, "app")
        return [bool(f.metadata) and BY_NAME in f.metadata for f in table.schema]

    assert by_name("SELECT t.s AS j FROM t JOIN t AS v USING (k)") == [True]
    assert by_name("SELECT v.j FROM t JOIN t AS v USING (k)") == [True]
    for text in ("SELECT j FROM t", "SELECT j FROM t WHERE k = 1", "SELECT k, j FROM t"):
        assert _json(engine, text)[-1] and not any(by_name(text)), text
