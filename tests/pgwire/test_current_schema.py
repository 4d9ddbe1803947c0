"""current_schema() and current_schemas() with a search_path naming schemas
that do not exist: as PostgreSQL's, a missing one is skipped (current_schema
is NULL when the namespace unqualified names mean does not exist). Until
2026-12-08 current_schema() answered a namespace that did not exist, and
current_schemas() was ['pg_catalog'] whatever search_path said."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

NS = "curschema_here"


def _schemas(conn: psycopg.Connection[Any], path: str) -> tuple[Any, ...]:
    conn.execute(f"SET search_path = {path}")
    row = conn.execute("SELECT current_schema(), current_schemas(false) AS a, "
                       "current_schemas(true) AS b").fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(("path", "expected"), [
    ("curschema_nosuch", (None, [], ["pg_catalog"])),
    ('"$user", public', (None, [], ["pg_catalog"])),  # no public namespace in Cairn
    (f"curschema_nosuch, {NS}", (NS, [NS], ["pg_catalog", NS])),  # the first that exists
    (f"public, {NS}, curschema_nosuch", (NS, [NS], ["pg_catalog", NS])),
    (f"{NS}, pg_catalog", (NS, [NS, "pg_catalog"], [NS, "pg_catalog"])),
    ("pg_catalog", ("pg_catalog", ["pg_catalog"], ["pg_catalog"])),
    ("curschema_nosuch, information_schema",
     (None, ["information_schema"], ["pg_catalog", "information_schema"])),
])
def test_missing_schemas_are_skipped(pg: PgServer, path: str, expected: tuple[Any, ...]) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE NAMESPACE IF NOT EXISTS {NS}")
        assert _schemas(conn, path) == expected


def test_a_namespace_made_later_is_current(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert _schemas(conn, "curschema_later") == (None, [], ["pg_catalog"])
        conn.execute("CREATE NAMESPACE curschema_later")
        assert _schemas(conn, "curschema_later") == (
            "curschema_later", ["curschema_later"], ["pg_catalog", "curschema_later"])
        conn.execute("DROP NAMESPACE curschema_later")
        assert _schemas(conn, "curschema_later") == (None, [], ["pg_catalog"])


def test_current_schemas_of_a_computed_flag(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE NAMESPACE IF NOT EXISTS {NS}")
        conn.execute(f"SET search_path = {NS}")
        rows = conn.execute("SELECT current_schemas(x) FROM (VALUES (true), (false), (NULL)) "
                            "v(x)").fetchall()
        assert rows == [(["pg_catalog", NS],), ([NS],), (None,)]
