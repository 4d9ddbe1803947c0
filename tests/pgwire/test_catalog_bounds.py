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
    # string_split & co. in a lambda, over the whole list (storage/lambda_guard.py):
    # one row of 1,100 texts of 8 KiB, just past the 8 MiB of a vector (the
    # catalog's DuckDB split them all: 850 MB under its 256 MB limit)
    ("SELECT version(), len(list_transform(l, x -> string_split(x, ''))) FROM (SELECT "
     "list(repeat('a', 8188) || lpad(x::VARCHAR, 4, '0')) AS l FROM range(1100) t(x))",
     "8,192 bytes of text split a row"),
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


def test_a_regproc_literal_is_compared_with_pg_types_function_names(pg: PgServer) -> None:
    """`typinput = 'array_in'::regproc` (pgjdbc's array test, Laravel's type
    list): the literal was the OID 0 compared with pg_type's names, which is no
    value but a conversion: no rows, then (with the refusal of a query failing
    on a value) 22023 for a query every PostgreSQL answers."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        got = conn.execute(
            "SELECT typname, typinput = 'pg_catalog.array_in'::regproc AS is_array, typtype "
            "FROM pg_catalog.pg_type WHERE typname IN ('int4', '_int4') ORDER BY typname")
        assert got.fetchall() == [("_int4", True, "b"), ("int4", False, "b")]
        got = conn.execute("SELECT typreceive, typsend FROM pg_catalog.pg_type "
                           "WHERE typoutput = 'array_out'::regproc AND typelem = 23")
        assert got.fetchall() == [("array_recv", "array_send")]


def test_a_name_cast_to_regtype_reads_as_postgresql(pg: PgServer) -> None:
    """`typname::regtype` was a cast to BIGINT, 22023 "Could not convert
    string 'bool'" on every row; `'int4'::regtype::text` too; `oid::regtype`
    showed 23, and `::regtype::text` 'int4' (asyncpg's type introspection
    names types so, PostgreSQL writes 'integer', arrays 'integer[]')."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        got = conn.execute(
            "SELECT typname::regtype::text, oid::regtype, typname::regtype = oid "
            "FROM pg_catalog.pg_type WHERE typname IN ('int4', '_int4', 'timestamptz') "
            "ORDER BY oid").fetchall()
        assert got == [("integer", "integer", True), ("integer[]", "integer[]", True),
                       ("timestamp with time zone", "timestamp with time zone", True)]
        got = conn.execute("SELECT 'int4'::regtype::text, 'integer[]'::regtype::oid, "
                           "(SELECT 'int8')::regtype, 99999::regtype::text, NULL::regtype::text "
                           "FROM pg_catalog.pg_namespace LIMIT 1").fetchone()
        assert got == ("integer", 1007, "bigint", "99999", None)
        with pytest.raises(psycopg.Error, match='type "nosuch" does not exist'):
            conn.execute("SELECT x::regtype FROM (VALUES ('nosuch')) v(x), pg_catalog.pg_type")


def test_pgjdbc_reads_the_sql_keywords(pg: PgServer) -> None:
    """pgjdbc's getSQLKeywords() (Hibernate and DBeaver call it): its query
    was 42501 "table function pg_get_keywords() is not allowed", and its
    `'{…}'::text[]` a conversion error once it ran."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        (words,), = conn.execute(  # pgjdbc's query, its SQL:2003 list cut short
            "select string_agg(word, ',') from pg_catalog.pg_get_keywords() "
            "where word <> ALL ('{a,abs,absolute,action,ada,add,admin,after,all,alter}'::text[])"
        ).fetchall()
        words = words.split(",")
        assert "analyze" in words and "select" in words and "all" not in words, words[:10]
        got = conn.execute("SELECT word, catcode, catdesc FROM pg_catalog.pg_get_keywords() k "
                           "WHERE k.word IN ('abort', 'select') ORDER BY word").fetchall()
        assert got == [("abort", "U", "unreserved"), ("select", "R", "reserved")]


DJANGO_COLUMNS = (  # django.db.backends.postgresql.introspection.get_table_description
    "SELECT a.attname AS column_name, NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)) "
    "AS is_nullable FROM pg_attribute a LEFT JOIN pg_attrdef ad ON a.attrelid = ad.adrelid AND "
    "a.attnum = ad.adnum JOIN pg_type t ON a.atttypid = t.oid JOIN pg_class c ON a.attrelid = "
    "c.oid JOIN pg_namespace n ON c.relnamespace = n.oid WHERE c.relkind IN ('f', 'm', 'p', 'r', "
    "'v') AND c.relname = %s AND n.nspname NOT IN ('pg_catalog', 'pg_toast') "
    "AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY a.attnum")


def test_a_table_is_visible_only_in_search_paths_namespace(pg: PgServer) -> None:
    """pg_table_is_visible() was true of every relation: Django's introspection
    of `same`, search_path naming vis_b, read vis_a's `same` too (its columns
    twice, two primary keys), and psql's \\dt listed every namespace. Without a
    namespace in search_path every relation is listed, as before."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE vis_a; CREATE NAMESPACE vis_b; "
                     "CREATE TABLE vis_a.same (k INT PRIMARY KEY, a TEXT); "
                     "CREATE TABLE vis_b.same (k INT PRIMARY KEY); "
                     "CREATE TABLE vis_b.other (k INT PRIMARY KEY)")
        listed = "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n " \
                 "ON n.oid = c.relnamespace WHERE n.nspname LIKE 'vis_%%' " \
                 "AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1"
        assert conn.execute(listed).fetchall() == [("other",), ("other_pkey",), ("same",),
                                                   ("same",), ("same_pkey",), ("same_pkey",)]
    with psycopg.connect(pg.dsn(options="-csearch_path=vis_b"), autocommit=True) as conn:
        assert conn.execute(DJANGO_COLUMNS, ("same",)).fetchall() == [
            ("k", False), ("_updated", False), ("_deleted", False)]
        assert conn.execute(listed).fetchall() == [("other",), ("other_pkey",), ("same",),
                                                   ("same_pkey",)]


DENIED_BESIDE_THE_CATALOG = [
    "SELECT * FROM pg_catalog.pg_class c JOIN read_csv('/etc/passwd') x ON true",
    "SELECT * FROM pg_catalog.pg_policy, duckdb_settings()",  # an unmodelled relation first
    "SELECT n.nspname FROM pg_catalog.pg_namespace n, LATERAL query_table(n.nspname) q",
]


def test_a_denied_table_function_beside_catalog_relations_is_42501(pg: PgServer) -> None:
    """It was answered with no rows, as something Cairn does not model (nothing
    was read: the catalog's DuckDB has no file access), where the same function
    in any other query is refused."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for text in DENIED_BESIDE_THE_CATALOG:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not allowed"):
                conn.execute(text).fetchall()
        # PostgreSQL's own, unmodelled (psql's \des+): still no rows
        cur = conn.execute("SELECT option_name FROM pg_catalog.pg_namespace n, "
                           "pg_catalog.pg_options_to_table(n.nspacl) o")
        assert cur.fetchall() == []


def test_pgjdbc_finds_max_index_keys(pg: PgServer) -> None:
    """pgjdbc's getImportedKeys / getExportedKeys / getCrossReference read it
    first, and failed ("Unable to determine a value for MaxIndexKeys") on an
    empty pg_settings. Only compile-time constants are there."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        got = conn.execute("SELECT setting FROM pg_catalog.pg_settings "
                           "WHERE name='max_index_keys'").fetchall()
        assert got == [("32",)]
        names = {r[0] for r in conn.execute("SELECT name FROM pg_catalog.pg_settings")}
        assert names == {"max_index_keys", "max_identifier_length"}
