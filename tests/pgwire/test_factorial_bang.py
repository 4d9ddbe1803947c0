"""A standalone `!` (DuckDB's postfix factorial, sqlglot's NOT) is refused
over the PostgreSQL protocol too, with parameters and in a catalog query
(sqlgrammar/factorial.py; tests/e2e/test_factorial_bang.py holds it to
DuckDB over HTTP). `SELECT 3 ! IN ($1, $2)` with 1, 2 answered true (DuckDB:
false, 3! is 6) and `DELETE ... WHERE k ! IN ($1, $2)` deleted the rows
DuckDB keeps; `!=` and `!~~` with parameters answer as before."""

from __future__ import annotations

import duckdb
import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

SETUP = ("CREATE TABLE bangpg.t (k INT PRIMARY KEY, v TEXT); "
         "INSERT INTO bangpg.t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
TABLE = "SELECT k, v FROM bangpg.t ORDER BY k"


def _refused(conn: psycopg.Connection, text: str, params: tuple[object, ...] = ()) -> None:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(text, params)
    assert caught.value.sqlstate == "22023", caught.value
    assert "factorial(x)" in str(caught.value), caught.value


def test_a_factorial_bang_with_parameters_is_refused_over_pgwire(pg: PgServer) -> None:
    model = duckdb.connect()
    model.execute("CREATE SCHEMA bangpg")
    model.execute(SETUP)
    assert model.execute("SELECT 3 ! IN (1, 2)").fetchall() == [(False,)]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE bangpg")
        conn.execute(SETUP)
        before = conn.execute(TABLE).fetchall()
        _refused(conn, "SELECT 3 ! IN (%s, %s) AS v", (1, 2))
        _refused(conn, "SELECT k FROM bangpg.t WHERE k ! IS NOT DISTINCT FROM %s", (6,))
        _refused(conn, "UPDATE bangpg.t SET v = %s WHERE k ! IN (%s, %s)", ("x", 1, 2))
        _refused(conn, "DELETE FROM bangpg.t WHERE k ! IN (%s, %s)", (1, 2))
        _refused(conn, "DELETE FROM bangpg.t WHERE k ! BETWEEN %s AND %s", (1, 2))
        assert conn.execute(TABLE).fetchall() == before
        # a catalog query (sqlglot's PostgreSQL dialect, on the catalog's DuckDB) likewise
        _refused(conn, "SELECT count(*) FROM pg_catalog.pg_class WHERE 3 ! IN (1, 2)")
        # DuckDB's `!` operators, and a `!` in a parameter's value, are untouched
        kept = "SELECT k FROM bangpg.t WHERE v != %s AND v !~~ %s AND %s <> '' ORDER BY k"
        assert conn.execute(kept, ("a", "b%", "! IN")).fetchall() == model.execute(
            kept.replace("%s", "?"), ("a", "b%", "! IN")).fetchall() == [(3,), (4,)]
        assert conn.execute("SELECT count(*) FROM pg_catalog.pg_class WHERE 1 != 2"
                            ).fetchall()[0][0] >= 0
