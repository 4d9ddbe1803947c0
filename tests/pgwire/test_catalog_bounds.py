"""A query on PostgreSQL's catalog runs in a DuckDB of its own, out of the
SQL sandbox's walk: the same bounds on what its values build apply there
(storage/value_bounds.py), lambdas, quadratic functions and regular
expressions included."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.conftest import PgServer

REFUSED = [
    ("SELECT list_transform(range(20), x -> range(4000)) FROM pg_catalog.pg_namespace", "range()"),
    ("SELECT damerau_levenshtein(nspname, 'ab') FROM pg_catalog.pg_namespace",
     "damerau_levenshtein()"),
    ("SELECT nspname FROM pg_catalog.pg_namespace WHERE regexp_matches(nspname, nspname)",
     "regexp_matches()"),
    ("SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname SIMILAR TO '"
     + "a{1,1000}" * 11 + "'", "SIMILAR TO"),
    ("SELECT list_transform(range(300), x -> '" + "x" * 300 + "') FROM pg_catalog.pg_namespace",
     "string literal"),
]


@pytest.mark.parametrize(("text", "name"), REFUSED)
def test_a_catalog_query_is_bounded_as_any_query(pg: PgServer, text: str, name: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(text)
        assert caught.value.sqlstate == "22023" and name in str(caught.value), caught.value
        # psql's \d pattern, as psql sends it, still runs.
        got = conn.execute("SELECT count(*) FROM pg_catalog.pg_namespace n WHERE n.nspname "
                           "OPERATOR(pg_catalog.~) '^(main)$' COLLATE pg_catalog.default")
        assert got.fetchone() is not None


FAILING_ON_A_VALUE = [
    "SELECT count(*) FROM pg_catalog.pg_class WHERE relname::INT = 1",
    "SELECT 2147483647::INT + 1 FROM pg_catalog.pg_namespace",
    "SELECT 'x'::INT, version()",
    "SELECT error('boom') FROM pg_catalog.pg_namespace",
]


def test_a_catalog_query_failing_on_a_value_is_refused_not_answered_empty(pg: PgServer) -> None:
    """Such a query was answered with no rows as if it asked for something
    Cairn does not model: a count(*) gave no row at all, an overflow 'none'."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for text in FAILING_ON_A_VALUE:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(text).fetchall()
            assert caught.value.sqlstate == "22023", (text, caught.value)
        # Something Cairn does not model still answers no rows, its columns as asked.
        cur = conn.execute("SELECT polname FROM pg_catalog.pg_policy")
        assert cur.fetchall() == [] and cur.description[0].name == "polname"
