"""PostgreSQL's regtype, as far as clients use it on Cairn's catalog: a
type's name as regtype input reads it (its SQL spellings too), for
`to_regtype('json')` and `'json'::regtype`, and `oid::regtype::text`, a
type's name. psycopg's TypeInfo.fetch found no type (every name was 0 and
to_regtype() was unknown), so its adapters registered nothing. And the OID
a name cast to regclass (or a number cast to oid) stands for."""

from __future__ import annotations

from sqlglot import exp

from . import relations
from . import types as t

_TYPE_OIDS = {name: oid for oid, (name, _) in t.TYPES.items()} | {
    "integer": t.INT4, "int": t.INT4, "bigint": t.INT8, "smallint": t.INT2,
    "boolean": t.BOOL, "real": t.FLOAT4, "double precision": t.FLOAT8,
    "character varying": t.VARCHAR, "character": t.BPCHAR, "decimal": t.NUMERIC,
    "timestamp without time zone": t.TIMESTAMP, "timestamp with time zone": t.TIMESTAMPTZ}


def type_oid(text: str) -> int | None:
    name = " ".join(text.lower().replace('"', "").split()).removeprefix("pg_catalog.")
    return _TYPE_OIDS.get(name)


def to_regtype(arg: exp.Expression | None) -> exp.Expression:
    """The OID of the type a string names; NULL when none (PostgreSQL's too)."""
    if isinstance(arg, exp.Literal) and arg.is_string and (oid := type_oid(arg.this)):
        return exp.Literal.number(oid)
    return exp.null()


def regtype_text(value: exp.Expression) -> exp.Expression:
    """`value::regtype::text`: the type's name (it was the number)."""
    case = exp.Case(this=value.copy(), ifs=[
        exp.If(this=exp.Literal.number(oid), true=exp.Literal.string(name))
        for oid, (name, _) in t.TYPES.items()])
    return case.else_(exp.cast(value.copy(), "VARCHAR"), copy=False)


# PostgreSQL's own OIDs of the catalog relations clients name in casts.
_RELATION_OIDS = {"pg_class": 1259, "pg_namespace": 2615, "pg_attribute": 1249,
                  "pg_type": 1247, "pg_proc": 1255, "pg_constraint": 2606,
                  "pg_database": 1262, "pg_index": 2610, "pg_description": 2609,
                  "pg_attrdef": 2604, "pg_am": 2601, "pg_roles": 1260, "pg_authid": 1260}


def named_oid(text: str) -> int:
    """The OID a name cast to regclass (or a number cast to oid) stands for."""
    name = text.strip().lower().replace('"', "")
    if name.isdigit():
        return int(name)
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
