"""SQLAlchemy 2.x's reflection over pgwire: its PostgreSQL dialect's catalog
queries, as SQLAlchemy 2.1 sends them through psycopg. Each writes every
column with its schema (`pg_catalog.pg_class.relname`), which did not bind
on the catalog's DuckDB, and get_columns reads pg_sequence and calls
json_build_object(): every one was answered with no rows, so SQLAlchemy saw
no schema, `has_table` was false and a table reflected with no columns. The
texts are SQLAlchemy's own, so the test needs no SQLAlchemy."""

from __future__ import annotations

import psycopg

from tests.pgwire.conftest import PgServer

SHARE_PG = True
KINDS = {"param_1": "r", "param_2": "p", "param_3": "f", "param_4": "v", "param_5": "m"}


SCHEMAS = (
    'SELECT pg_catalog.pg_namespace.nspname \nFROM pg_catalog.pg_namespace \nWHERE '
    "(pg_catalog.pg_namespace.nspname NOT LIKE %(nspname_1)s::VARCHAR || '%%' ESCAPE '/') "
    'ORDER BY pg_catalog.pg_namespace.nspname'
)

HAS_TABLE = (
    'SELECT pg_catalog.pg_class.relname \nFROM pg_catalog.pg_class JOIN '
    'pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = '
    'pg_catalog.pg_class.relnamespace \nWHERE pg_catalog.pg_class.relname IN '
    '(%(table_names_1)s::VARCHAR) AND pg_catalog.pg_class.relkind = ANY '
    '(ARRAY[%(param_1)s::VARCHAR, %(param_2)s::VARCHAR, %(param_3)s::VARCHAR, '
    '%(param_4)s::VARCHAR, %(param_5)s::VARCHAR]) AND pg_catalog.pg_namespace.nspname = '
    '%(nspname_1)s::VARCHAR'
)

COLUMNS = (
    'SELECT pg_catalog.pg_attribute.attname AS name, '
    'pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, '
    'pg_catalog.pg_attribute.atttypmod) AS format_type, CASE WHEN '
    'pg_catalog.pg_attribute.atthasdef THEN (SELECT '
    'pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, pg_catalog.pg_attrdef.adrelid) AS '
    'pg_get_expr_1 \nFROM pg_catalog.pg_attrdef \nWHERE pg_catalog.pg_attribute.atthasdef '
    'AND pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid AND '
    'pg_catalog.pg_attrdef.adnum = pg_catalog.pg_attribute.attnum) ELSE NULL END AS '
    '"default", pg_catalog.pg_attribute.attnotnull AS not_null, '
    'pg_catalog.pg_class.relname AS table_name, pg_catalog.pg_description.description AS '
    'comment, pg_catalog.pg_attribute.attgenerated AS generated, CASE WHEN '
    '(pg_catalog.pg_attribute.attidentity != %(attidentity_1)s::VARCHAR) THEN (SELECT '
    'json_build_object(%(json_build_object_2)s::VARCHAR, '
    'pg_catalog.pg_attribute.attidentity = %(attidentity_2)s::VARCHAR, '
    '%(json_build_object_3)s::VARCHAR, pg_catalog.pg_sequence.seqstart, '
    '%(json_build_object_4)s::VARCHAR, pg_catalog.pg_sequence.seqincrement, '
    '%(json_build_object_5)s::VARCHAR, pg_catalog.pg_sequence.seqmin, '
    '%(json_build_object_6)s::VARCHAR, pg_catalog.pg_sequence.seqmax, '
    '%(json_build_object_7)s::VARCHAR, pg_catalog.pg_sequence.seqcache, '
    '%(json_build_object_8)s::VARCHAR, pg_catalog.pg_sequence.seqcycle) AS '
    'json_build_object_1 \nFROM pg_catalog.pg_sequence \nWHERE '
    'pg_catalog.pg_attribute.attidentity != %(attidentity_3)s::VARCHAR AND '
    'pg_catalog.pg_sequence.seqrelid = '
    'CAST(CAST(pg_catalog.pg_get_serial_sequence(CAST(CAST(pg_catalog.pg_attribute.attrelid '
    'AS REGCLASS) AS TEXT), pg_catalog.pg_attribute.attname) AS REGCLASS) AS OID)) ELSE '
    'NULL END AS identity_options, CASE WHEN (pg_catalog.pg_attribute.attcollation != '
    '%(attcollation_1)s::INTEGER AND (SELECT pg_catalog.pg_type.typcollation \nFROM '
    'pg_catalog.pg_type \nWHERE pg_catalog.pg_type.oid = pg_catalog.pg_attribute.atttypid) '
    '!= pg_catalog.pg_attribute.attcollation) THEN (SELECT '
    'json_build_object(%(json_build_object_10)s::VARCHAR, '
    'pg_catalog.pg_collation.collname, %(json_build_object_11)s::VARCHAR, CASE WHEN '
    'pg_catalog.pg_collation_is_visible(pg_catalog.pg_collation.oid) THEN NULL ELSE '
    'pg_catalog.pg_namespace.nspname END) AS json_build_object_9 \nFROM '
    'pg_catalog.pg_collation JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = '
    'pg_catalog.pg_collation.collnamespace \nWHERE pg_catalog.pg_collation.oid = '
    'pg_catalog.pg_attribute.attcollation) ELSE NULL END AS collation \nFROM '
    'pg_catalog.pg_class LEFT OUTER JOIN pg_catalog.pg_attribute ON '
    'pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid AND '
    'pg_catalog.pg_attribute.attnum > %(attnum_1)s::SMALLINT AND NOT '
    'pg_catalog.pg_attribute.attisdropped LEFT OUTER JOIN pg_catalog.pg_description ON '
    'pg_catalog.pg_description.objoid = pg_catalog.pg_attribute.attrelid AND '
    'pg_catalog.pg_description.objsubid = pg_catalog.pg_attribute.attnum JOIN '
    'pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = '
    'pg_catalog.pg_class.relnamespace \nWHERE pg_catalog.pg_class.relkind = ANY '
    '(ARRAY[%(param_1)s::VARCHAR, %(param_2)s::VARCHAR, %(param_3)s::VARCHAR, '
    '%(param_4)s::VARCHAR, %(param_5)s::VARCHAR]) AND pg_catalog.pg_namespace.nspname = '
    '%(nspname_1)s::VARCHAR AND pg_catalog.pg_class.relname IN '
    '(%(filter_names_1)s::VARCHAR) ORDER BY pg_catalog.pg_class.relname, '
    'pg_catalog.pg_attribute.attnum'
)

OIDS = (
    'SELECT pg_catalog.pg_class.oid, pg_catalog.pg_class.relname \nFROM pg_catalog.pg_class '
    'JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = '
    'pg_catalog.pg_class.relnamespace \nWHERE pg_catalog.pg_class.relkind = ANY '
    '(ARRAY[%(param_1)s::VARCHAR, %(param_2)s::VARCHAR, %(param_3)s::VARCHAR, '
    '%(param_4)s::VARCHAR, %(param_5)s::VARCHAR]) AND pg_catalog.pg_namespace.nspname = '
    '%(nspname_1)s::VARCHAR AND pg_catalog.pg_class.relname IN '
    '(%(filter_names_1)s::VARCHAR)'
)

PRIMARY_KEY = (
    'SELECT attr.conrelid, array_agg(CAST(attr.attname AS TEXT) ORDER BY attr.ord) AS '
    'cols, attr.conname, min(attr.description) AS description, min(attr.indnkeyatts) AS '
    'indnkeyatts, bool_and(attr.indnullsnotdistinct) AS indnullsnotdistinct \nFROM (SELECT '
    'con.conrelid AS conrelid, con.conname AS conname, con.description AS description, '
    'con.ord AS ord, con.indnkeyatts AS indnkeyatts, con.indnullsnotdistinct AS '
    'indnullsnotdistinct, pg_catalog.pg_attribute.attname AS attname \nFROM '
    'pg_catalog.pg_attribute JOIN (SELECT pg_catalog.pg_constraint.conrelid AS conrelid, '
    'pg_catalog.pg_constraint.conname AS conname, unnest(pg_catalog.pg_index.indkey) AS '
    'attnum, generate_subscripts(pg_catalog.pg_index.indkey, '
    '%(generate_subscripts_1)s::INTEGER) AS ord, pg_catalog.pg_index.indnkeyatts AS '
    'indnkeyatts, pg_catalog.pg_index.indnullsnotdistinct AS indnullsnotdistinct, '
    'pg_catalog.pg_description.description AS description \nFROM pg_catalog.pg_constraint '
    'JOIN pg_catalog.pg_index ON pg_catalog.pg_constraint.conindid = '
    'pg_catalog.pg_index.indexrelid LEFT OUTER JOIN pg_catalog.pg_description ON '
    'pg_catalog.pg_description.objoid = pg_catalog.pg_constraint.oid AND '
    'pg_catalog.pg_description.classoid = CAST(%(param_1)s AS REGCLASS) \nWHERE '
    'pg_catalog.pg_constraint.contype = %(contype)s::VARCHAR AND '
    'pg_catalog.pg_constraint.conrelid IN (%(oids_1)s)) AS con ON '
    'pg_catalog.pg_attribute.attnum = con.attnum AND pg_catalog.pg_attribute.attrelid = '
    'con.conrelid \nWHERE con.conrelid IN (%(oids_1)s)) AS attr GROUP BY attr.conrelid, '
    'attr.conname ORDER BY attr.conrelid, attr.conname'
)

COLUMN_PARAMS = {
    "attidentity_1": "", "json_build_object_2": "always", "attidentity_2": "a",
    "json_build_object_3": "start", "json_build_object_4": "increment",
    "json_build_object_5": "minvalue", "json_build_object_6": "maxvalue",
    "json_build_object_7": "cache", "json_build_object_8": "cycle", "attidentity_3": "",
    "attcollation_1": 0, "json_build_object_10": "name", "json_build_object_11": "schema",
    "attnum_1": 0, **KINDS,
}


def test_sqlalchemy_reflects_a_table_with_its_columns_and_primary_key(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS sqla")
        conn.execute("CREATE TABLE IF NOT EXISTS sqla.items (id BIGINT PRIMARY KEY, "
                     "label TEXT NOT NULL DEFAULT 'x', price DECIMAL(8,2))")
        schemas = [r[0] for r in conn.execute(SCHEMAS, {"nspname_1": "pg/_"}).fetchall()]
        assert "sqla" in schemas and "information_schema" in schemas
        where = {"nspname_1": "sqla", "table_names_1": "items", "filter_names_1": "items",
                 **KINDS}
        assert conn.execute(HAS_TABLE, where).fetchall() == [("items",)]  # has_table
        columns = conn.execute(COLUMNS, {**COLUMN_PARAMS, **where}).fetchall()
        assert [c[:5] for c in columns[:3]] == [
            ("id", "bigint", None, True, "items"),
            ("label", "text", "'x'", True, "items"),
            ("price", "numeric(8,2)", None, False, "items")], columns
        assert all(c[7] is None and c[8] is None for c in columns)  # no identity, collation
        ((oid, _),) = conn.execute(OIDS, where).fetchall()
        key = conn.execute(PRIMARY_KEY, {"generate_subscripts_1": 1, "contype": "p",
                                         "param_1": "pg_catalog.pg_constraint",
                                         "oids_1": oid}).fetchall()
        assert [k[:3] for k in key] == [(oid, ["id"], "items_pkey")], key
