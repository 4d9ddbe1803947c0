"""PostgreSQL's regtype, as far as clients use it on Cairn's catalog: a
type's name as regtype input reads it (its SQL spellings too), for
`to_regtype('json')` and `'json'::regtype`, and `oid::regtype::text`, a
type's name. psycopg's TypeInfo.fetch found no type (every name was 0 and
to_regtype() was unknown), so its adapters registered nothing. And the OID
a name cast to regclass (or a number cast to oid) stands for."""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from . import relations
from . import types as t
from .errors import PgError

# format_type's names (and regtype's output: `23::regtype::text` is 'integer')
# where they are not pg_type's typname; an array's is its element's with [].
_SQL_NAMES = {
    t.BOOL: "boolean", t.INT2: "smallint", t.INT4: "integer", t.INT8: "bigint",
    t.FLOAT4: "real", t.FLOAT8: "double precision", t.VARCHAR: "character varying",
    t.BPCHAR: "character", t.CHAR: '"char"', t.TIME: "time without time zone",
    t.TIMESTAMP: "timestamp without time zone", t.TIMESTAMPTZ: "timestamp with time zone"}
NAMES = {oid: _SQL_NAMES.get(oid, name) for oid, (name, _) in t.TYPES.items()}
NAMES |= {array: NAMES[element] + "[]" for element, array in t.ARRAYS.items()}
NAMES[0] = "-"  # no type: PostgreSQL's format_type(0, NULL) and 0::regtype::text
_TYPE_OIDS = {name: oid for oid, (name, _) in t.TYPES.items()} | {
    "_" + t.TYPES[element][0]: array for element, array in t.ARRAYS.items()} | {
    t.TYPES[element][0] + "[]": array for element, array in t.ARRAYS.items()} | {
    name.replace('"', ""): oid for oid, name in NAMES.items()} | {
    "int": t.INT4, "decimal": t.NUMERIC, "character varying[]": 1015, "character[]": 1014}


def type_oid(text: str) -> int | None:
    name = " ".join(text.lower().replace('"', "").split()).removeprefix("pg_catalog.")
    return _TYPE_OIDS.get(name)


def to_regtype(arg: exp.Expression | None) -> exp.Expression:
    """The OID of the type a string names; NULL when none (PostgreSQL's too)."""
    if isinstance(arg, exp.Literal) and arg.is_string and (oid := type_oid(arg.this)):
        return exp.Literal.number(oid)
    return exp.null()


# Macros of every catalog query's DuckDB (pgcatalog.CatalogEngine.run), over
# the tables TABLES: the value once a use (a CASE over the names held a
# subquery's copy per name, past DuckDB's expression depth).
MACROS = """;
CREATE OR REPLACE TEMP MACRO cairn_regtype(v) AS coalesce(
  (SELECT oid FROM cairn_type_oids WHERE name = lower(trim(CAST(v AS VARCHAR)))),
  TRY_CAST(CAST(v AS VARCHAR) AS BIGINT),
  CASE WHEN v IS NOT NULL THEN error('type "' || CAST(v AS VARCHAR) || '" does not exist') END);
CREATE OR REPLACE TEMP MACRO cairn_regtype_text(v) AS coalesce(
  (SELECT display FROM cairn_type_names WHERE oid = cairn_regtype(v)),
  CAST(cairn_regtype(v) AS VARCHAR))
"""
TABLES = {"cairn_type_names": pa.table({"oid": pa.array(list(NAMES), pa.int64()),
                                        "display": pa.array(list(NAMES.values()))}),
          "cairn_type_oids": pa.table({"name": pa.array(list(_TYPE_OIDS)),
                                       "oid": pa.array(list(_TYPE_OIDS.values()), pa.int64())})}


def regtype_oid(value: exp.Expression) -> exp.Expression:
    """`value::regtype` of a name or a number: `typname::regtype` was cast to
    BIGINT, 22023 on every name (asyncpg's, psql's and ORMs' catalog queries
    send such casts). A name no type has is an error, as in PostgreSQL."""
    return exp.Anonymous(this="cairn_regtype", expressions=[value])


def regtype_text(value: exp.Expression) -> exp.Expression:
    """`value::regtype::text`: the type's name as PostgreSQL writes it
    ('integer', 'text[]'; it was 'int4'), or the number of one it has not."""
    return exp.Anonymous(this="cairn_regtype_text", expressions=[value])


# PostgreSQL's own OIDs of the catalog relations clients name in casts.
_RELATION_OIDS = {"pg_class": 1259, "pg_namespace": 2615, "pg_attribute": 1249,
                  "pg_type": 1247, "pg_proc": 1255, "pg_constraint": 2606,
                  "pg_database": 1262, "pg_index": 2610, "pg_description": 2609,
                  "pg_attrdef": 2604, "pg_am": 2601, "pg_roles": 1260, "pg_authid": 1260}


# The functions pg_type's regproc columns name (relations.py): typinput, ...
_PROCS = {prefix + suffix for prefix in ["array_", *(n for n, _ in t.TYPES.values())]
          for suffix in ("in", "out", "recv", "send")}


def named_oid(text: str, to: str = "regclass") -> int:
    """The OID a name cast to regclass (or a number cast to oid) stands for.
    A function no type names, `'f'::regproc::oid` (psql's \\sf and \\ef look
    one up so), is 42883 as in PostgreSQL (it was 0, and \\sf refused
    pg_get_functiondef() as a function touching files)."""
    name = text.strip().lower().replace('"', "")
    if name.isdigit():
        return int(name)
    if to in ("regproc", "regprocedure") and proc_name(text) not in _PROCS:
        raise PgError("42883", f'function "{text.strip()[:64]}" does not exist')
    name = name.removeprefix("pg_catalog.")
    if name in _RELATION_OIDS:
        return _RELATION_OIDS[name]
    if "." in name:
        return relations.oid_of("rel", name)
    return 0


def proc_name(text: str) -> str:
    """A function's name as pg_type's regproc columns (typinput, typreceive, ...)
    hold it, for `typinput = 'array_in'::regproc` (pgjdbc's and Laravel's array
    test): its OID was 0, compared with a name, and the query failed (22023)."""
    name = text.strip().split("(")[0].strip().replace('"', "").lower()
    return name.removeprefix("pg_catalog.")
