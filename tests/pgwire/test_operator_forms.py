"""The operator forms DuckDB answers and Cairn refused (PARSE_ERROR, or ran
as text DuckDB reads as another operator) answer over the PostgreSQL
protocol as DuckDB answers them, in a query, an UPDATE's SET and a DELETE's
WHERE (sqlgrammar/postfix_ops.py; tests/e2e/test_operator_oracle.py holds
them to DuckDB over HTTP)."""

from __future__ import annotations

import duckdb
import psycopg

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

SETUP = ("CREATE TABLE oppg.t (k INT PRIMARY KEY, i INT, s TEXT, b BOOLEAN); "
         "INSERT INTO oppg.t VALUES (1, 1, 'a', TRUE), (2, NULL, NULL, NULL), (3, -16, 'x', FALSE)")
FORMS = ["i IN [1, 2] || [3]", "i IS NULL || 'x'", "FALSE IS NOT TRUE || 'x'",
         "b IS NOT TRUE || s", "- ~2", "- ~16 * 2", "- ~i * 2", "~ ~ i", "s NOTNULL || '!'"]


def test_the_forms_answer_as_duckdb_answers_them_over_pgwire(pg: PgServer) -> None:
    model = duckdb.connect()
    model.execute("CREATE SCHEMA oppg")
    model.execute(SETUP)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE oppg")
        conn.execute(SETUP)
        for form in FORMS:
            text = f"SELECT k, CAST({form} AS VARCHAR) AS v FROM oppg.t ORDER BY k"
            assert conn.execute(text).fetchall() == model.execute(text).fetchall(), text
        for stmt in ("UPDATE oppg.t SET s = i IS NULL || s WHERE b IS NOT TRUE || 'x' = 'truex'",
                     "DELETE FROM oppg.t WHERE i IN [1, 2] || [3] OR - ~i * 2 < 0"):
            conn.execute(stmt)
            model.execute(stmt)
            text = "SELECT k, i, s, b FROM oppg.t ORDER BY k"
            assert conn.execute(text).fetchall() == model.execute(text).fetchall(), stmt
