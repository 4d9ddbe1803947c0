"""A statement that makes DuckDB fail internally, over the PostgreSQL
protocol: the statement's error is 22023 with no native stack trace or
server path, and the server's DuckDB (and the catalog queries' own) is
replaced, so every other statement, of any client, goes on working."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.conftest import PgServer

TRIGGER = "SELECT json_type(s.x) AS t FROM (SELECT {'x': [j, NULL]::JSON[]} AS s FROM dfault.t) q"


def test_a_statement_that_fails_duckdb_leaves_every_client_working(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn("carol"), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE dfault")
        conn.execute("CREATE TABLE dfault.t (k INT PRIMARY KEY, j JSON)")
        conn.execute("""INSERT INTO dfault.t VALUES (1, '{"a": 2}'), (2, '{"a": 3}')""")
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(TRIGGER)
        said = str(caught.value)
        assert caught.value.sqlstate == "22023", said
        assert "DuckDB failed internally on this statement" in said
        assert "Stack Trace" not in said and "/" not in said, said
        # The same connection goes on.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(pg.dsn("dave"), autocommit=True) as conn:
        assert conn.execute("SELECT k FROM dfault.t ORDER BY k").fetchall() == [(1,), (2,)]
        assert conn.execute("DELETE FROM dfault.t WHERE k = 1").rowcount == 1
        assert conn.execute("SELECT count(*) FROM system.jobs").fetchone() is not None
        assert conn.execute("SELECT k FROM dfault.t").fetchall() == [(2,)]


def test_a_catalog_query_that_fails_duckdb_leaves_the_catalog_working(pg: PgServer) -> None:
    """The catalog queries' DuckDB: the failing query is answered empty (as
    any catalog query DuckDB refuses), and \\dn's query still lists namespaces."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS dcat")
        got = conn.execute("SELECT json_type(x) FROM (SELECT ['2', NULL]::JSON[] AS x) s, "
                           "pg_catalog.pg_namespace n").fetchall()
        assert got == []
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace")]
        assert "dcat" in names
