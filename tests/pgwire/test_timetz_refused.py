"""A TIME WITH TIME ZONE answer over the PostgreSQL protocol: DuckDB hands it
on without its UTC offset ('12:00:00+05' was sent as 12:00:00, also from a
query over pg_catalog, which has a DuckDB of its own). Refused, as over HTTP,
with the advice to cast it to VARCHAR."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


@pytest.mark.parametrize("query", [
    "SELECT TIMETZ '12:00:00+05' AS v",
    "SELECT '12:00:00+05'::timetz AS v",
    "SELECT ARRAY['12:00:00+05'::timetz] AS v",
    "SELECT TIMETZ '12:00:00+05' AS v FROM pg_catalog.pg_namespace LIMIT 1",
])
def test_a_time_with_time_zone_is_refused(pg: PgServer, query: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="TIME WITH TIME ZONE"):
            conn.execute(query)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="VARCHAR"):
            conn.execute(query.replace("'12:00:00+05'", "%s"), ("12:00:00+05",))
        assert conn.execute("SELECT CAST(TIMETZ '12:00:00+05' AS VARCHAR) AS v").fetchall() == [
            ("12:00:00+05",)]
