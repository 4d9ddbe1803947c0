"""`SET search_path = nosuch, app`: as PostgreSQL's, unqualified names mean
the first namespace of the path that exists at the time of the statement, to
read and to create in. Until 2026-12-08 they meant the first named (`nosuch`):
a read was NOT_FOUND and CREATE TABLE failed, where PostgreSQL 15 reads and
creates in `app`. When none of them exists, the first named is still the one
the error names."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def test_the_first_existing_namespace_is_read_and_created_in(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS spfirst_app")
        conn.execute("DROP TABLE IF EXISTS spfirst_app.t")
        conn.execute("DROP TABLE IF EXISTS spfirst_app.made")
        conn.execute("CREATE TABLE spfirst_app.t (k INT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO spfirst_app.t VALUES (1, 'app')")
        conn.execute("SET search_path = spfirst_nosuch, spfirst_app")
        assert conn.execute("SELECT v FROM t").fetchall() == [("app",)]
        assert conn.execute("SELECT current_schema()").fetchone() == ("spfirst_app",)
        conn.execute("CREATE TABLE made (k INT PRIMARY KEY)")
        conn.execute("INSERT INTO made VALUES (5)")
        assert conn.execute("SELECT k FROM spfirst_app.made").fetchall() == [(5,)]
        # the extended protocol (Parse's parameter types, Bind, Execute) too
        assert conn.execute("SELECT v FROM t WHERE k = %s", (1,)).fetchall() == [("app",)]


def test_a_namespace_made_later_is_taken_at_the_next_statement(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("DROP NAMESPACE IF EXISTS spfirst_later")
        conn.execute("CREATE NAMESPACE IF NOT EXISTS spfirst_base")
        conn.execute("CREATE TABLE IF NOT EXISTS spfirst_base.t (k INT PRIMARY KEY)")
        conn.execute("SET search_path = spfirst_later, spfirst_base")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
        conn.execute("CREATE NAMESPACE spfirst_later")
        try:
            conn.execute("CREATE TABLE t (k INT PRIMARY KEY)")  # in spfirst_later now
            conn.execute("INSERT INTO t VALUES (1), (2)")
            assert conn.execute("SELECT count(*) FROM spfirst_later.t").fetchone() == (2,)
            assert conn.execute("SELECT count(*) FROM spfirst_base.t").fetchone() == (0,)
        finally:
            conn.execute("DROP TABLE IF EXISTS spfirst_later.t")
            conn.execute("DROP NAMESPACE spfirst_later")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)  # spfirst_base's


@pytest.mark.parametrize("create", [False, True])
def test_none_existing_is_an_error_naming_the_first(pg: PgServer, create: bool) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("SET search_path = spfirst_none1, spfirst_none2")
        with pytest.raises(psycopg.Error) as err:
            conn.execute("CREATE TABLE t (k INT PRIMARY KEY)" if create else "SELECT * FROM t")
        assert "spfirst_none1" in str(err.value), err.value


def test_many_names_are_checked_at_once(pg: PgServer) -> None:
    """Past 16 names, checked against the namespaces read at once (not a look-up
    each: a path of 1 MB), the first that exists all the same."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS spfirst_app")
        conn.execute("CREATE TABLE IF NOT EXISTS spfirst_app.many (k INT PRIMARY KEY)")
        path = ", ".join([f"spfirst_gone{i}" for i in range(40)] + ["spfirst_app"])
        conn.execute(f"SET search_path = {path}")
        assert conn.execute("SELECT count(*) FROM many").fetchone() == (0,)
