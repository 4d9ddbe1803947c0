"""A statement that makes DuckDB fail internally, over the PostgreSQL
protocol: the statement's error is 22023 with no native stack trace or
server path, and the server's DuckDB (and the catalog queries' own) is
replaced, so every other statement, of any client, goes on working."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.conftest import ADMIN_TOKEN, USER_TOKEN, PgServer

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


def test_a_catalog_query_that_fails_duckdb_is_quarantined_and_braked(pg_tls: PgServer) -> None:
    """The catalog queries' DuckDB: the failing query was answered empty and
    could be sent again and again, each time rebuilding that DuckDB (others'
    catalog queries on it answered empty). Now it is 22023, not run again
    (for its user), and counted to its user's brake; \\dn's query still lists
    namespaces, and another user's same query runs."""
    user = pg_tls.dsn("anyone", password=USER_TOKEN, sslmode="require")
    admin = pg_tls.dsn("anyone", password=ADMIN_TOKEN, sslmode="require")
    faults = [f"SELECT json_type(x) AS v{i} FROM (SELECT ['2', NULL]::JSON[] AS x) s, "
              "pg_catalog.pg_namespace n" for i in range(3)]
    with psycopg.connect(user, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(faults[0])
        assert caught.value.sqlstate == "22023", str(caught.value)
        assert "DuckDB failed internally on this statement" in str(caught.value)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(faults[0].replace("'2'", "'3'"))  # the same, another literal
        assert caught.value.sqlstate == "22023"
        assert "fail internally before" in str(caught.value)
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace")]
        assert "pg_catalog" in names
        for text in faults[1:]:  # the third fault of the user brakes them
            with pytest.raises(psycopg.Error, match="DuckDB failed internally"):
                conn.execute(text)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT nspname FROM pg_catalog.pg_namespace")
        assert caught.value.sqlstate == "58030", str(caught.value)
        assert "queries of user 'joe' are refused" in str(caught.value)
    with psycopg.connect(admin, autocommit=True) as conn:  # another user's: it runs
        with pytest.raises(psycopg.Error, match="DuckDB failed internally on this statement"):
            conn.execute(faults[0])
        assert "pg_catalog" in [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_catalog.pg_namespace")]
