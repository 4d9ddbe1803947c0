"""A `$n` compared with a column an alias's column list renamed (`FROM ns.t
AS x(k, n, v)`: `n` is t's second column, v) is not typed by the table's
column of that name: '007' typed as t's BIGINT n matched '7' too."""

from __future__ import annotations

import psycopg

from tests.pgwire.conftest import PgServer


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
