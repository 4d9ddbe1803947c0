"""A `$n` compared with a column an alias's column list renamed (`FROM ns.t
AS x(k, n, v)`: `n` is t's second column, v) is not typed by the table's
column of that name: '007' typed as t's BIGINT n matched '7' too."""

from __future__ import annotations

import psycopg

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def test_a_renamed_column_types_no_parameter_by_the_tables_name(pg: PgServer) -> None:
    status, body = pg.proc.post(
        "CREATE NAMESPACE sq; CREATE TABLE sq.t (k BIGINT PRIMARY KEY, v TEXT, n BIGINT);"
        "INSERT INTO sq.t VALUES (1, '007', 1), (2, '7', 2)")
    assert status == 200, body
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        q = "SELECT k FROM sq.t AS x(k, n, v) WHERE n = %s ORDER BY k"
        assert conn.execute(q, ("007",)).fetchall() == [(1,)]
        q = "SELECT k FROM sq.t AS x(k, n) WHERE x.n = %s ORDER BY k"
        assert conn.execute(q, ("7",)).fetchall() == [(2,)]
        q = "SELECT k FROM sq.t AS x(k, n, v) WHERE v = %s ORDER BY k"
        assert conn.execute(q, ("2",)).fetchall() == [(2,)]
        # No list: the table's own names still type it (BIGINT: '02' is 2).
        assert conn.execute("SELECT k FROM sq.t AS x WHERE n = %s", ("02",)).fetchall() == [(2,)]


def test_a_having_alias_types_its_parameter_as_duckdb_binds_it(pg: PgServer) -> None:
    """In HAVING, DuckDB binds a SELECT alias before a table column of its name
    (unless GROUP BY names the column, or it is inside an aggregate); in WHERE,
    QUALIFY, GROUP BY and ORDER BY the table's column first. `SELECT v AS n …
    HAVING n = $1` was typed by the table's BIGINT n: '007' matched '7' too,
    and a DELETE … IN (that query) emptied the table where HTTP deleted one row."""
    status, body = pg.proc.post(
        "CREATE NAMESPACE hv; CREATE TABLE hv.h (k BIGINT PRIMARY KEY, v TEXT, n BIGINT);"
        "INSERT INTO hv.h VALUES (1, '007', 7), (2, '7', 8)")
    assert status == 200, body
    cases = [  # (query, parameter, its type, rows)
        ("SELECT v AS n FROM hv.h GROUP BY v HAVING n = %s", "007", 25, [("007",)]),
        ("SELECT v AS n FROM hv.h GROUP BY v, n HAVING n = %s", "08", 20, [("7",)]),
        ("SELECT v AS n FROM hv.h GROUP BY v HAVING max(n) = %s", "07", 20, [("007",)]),
        ("SELECT v AS n FROM hv.h WHERE n = %s", "07", 20, [("007",)]),
        ("SELECT v AS n FROM hv.h QUALIFY n = %s AND row_number() OVER () > 0", "08", 20,
         [("7",)]),
        ("SELECT n AS x FROM hv.h WHERE x = %s", "08", 20, [(8,)]),
    ]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for i, (query, value, oid, want) in enumerate(cases):
            conn.pgconn.prepare(f"s{i}".encode(), query.replace("%s", "$1").encode())
            described = conn.pgconn.describe_prepared(f"s{i}".encode())
            assert described.param_type(0) == oid, query
            assert conn.execute(query, (value,)).fetchall() == want, query
        cur = conn.execute("DELETE FROM hv.h WHERE v IN "
                           "(SELECT v AS n FROM hv.h GROUP BY v HAVING n = %s)", ("007",))
        assert cur.rowcount == 1
        assert conn.execute("SELECT k FROM hv.h").fetchall() == [(2,)]
