"""The `pg_catalog` and `information_schema` relations clients read, built as
Arrow tables from Cairn's own catalog (never from DuckDB's).

A Cairn namespace is a schema, a table is a relation of kind 'r' and a system
table one of kind 'v' in schema `system`. OIDs are derived from names, so they
are stable across the several queries psql's `\\d` sends."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from catalog import Namespace
from catalog.errors import CairnError, NotFound
from storage import system_tables
from storage.types import shown_default, type_label

from ..result import cairn_type
from ..state import Cairn
from . import types as t

OWNER_OID = 10
BTREE_AM = 403
PG_CATALOG_OID, INFO_SCHEMA_OID = 11, 13000
DEFAULT_TABLESPACE_OID = 1663  # pg_default, as PostgreSQL numbers it
HEAP_AM = 2
DATABASE_OID = 16384
DATABASE = "cairn"


def oid_of(kind: str, name: str) -> int:
    """A stable OID above PostgreSQL's fixed range (16384) for a name."""
    return 16385 + zlib.crc32(f"{kind}:{name}".encode()) % 2_000_000_000


SCANS = 4  # reads of the table list when tables are swapped under it (Snapshot)


class Snapshot:
    """Cairn's catalog read once, for one catalog query."""

    def __init__(self, cairn: Cairn, user: str) -> None:
        self.user = user
        self.namespaces = sorted(ns.name for ns in cairn.catalog.scan(Namespace))
        # (namespace, table, kind, [(column, cairn type, not_null, default)])
        self.tables: list[tuple[str, str, str, list[tuple[str, str, bool, Any]]]] = []
        # (namespace, table) -> primary key as [(column, attnum)]: an index and a constraint
        self.keys: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for attempt in range(SCANS):
            self.tables, self.keys, again = [], {}, False
            for rec in cairn.engine.list_tables():
                try:  # the state of this record, never another table of its name
                    st = cairn.engine.tables.state_for(rec)
                    if st.dropped:
                        raise NotFound(f"Table '{rec.namespace}.{rec.name}' does not exist")
                except NotFound:  # dropped or replaced (a RESTORE ... replace) since the
                    again = True  # scan: read them all again (a restore's old tables
                    if attempt < SCANS - 1:  # less those the backup lacks, with the new
                        break  # ones' columns, were listed: neither namespace)
                    continue
                except CairnError:  # a damaged buffer
                    continue
                cols = [(c["name"], type_label(c), bool(c.get("not_null")), shown_default(c))
                        for c in st.columns]
                self.tables.append((rec.namespace, rec.name, "r", cols))
                names = [c[0] for c in cols]
                key = [k for k in rec.primary_key if k in names]
                if key:
                    self.keys[(rec.namespace, rec.name)] = [(k, names.index(k) + 1) for k in key]
            if not again:
                break
        for name in system_tables.NAMES:
            schema = system_tables.schema_of(name)
            cols = [(f.name, cairn_type(f), False, None) for f in schema]
            self.tables.append(("system", name, "v", cols))


def schemas(s: Snapshot) -> list[tuple[int, str]]:
    out = [(PG_CATALOG_OID, "pg_catalog"), (INFO_SCHEMA_OID, "information_schema"),
           (oid_of("ns", "system"), "system")]
    return out + [(oid_of("ns", n), n) for n in s.namespaces]


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, pa.DataType]]) -> pa.Table:
    return pa.table({name: pa.array([r.get(name) for r in rows], type=typ)
                     for name, typ in columns})


I64, I32, I16, TXT, BOOL = pa.int64(), pa.int32(), pa.int16(), pa.string(), pa.bool_()
TXTS = pa.list_(pa.string())


def pg_namespace(s: Snapshot) -> pa.Table:
    rows = [{"oid": o, "nspname": n, "nspowner": OWNER_OID} for o, n in schemas(s)]
    return _table(rows, [("oid", I64), ("nspname", TXT), ("nspowner", I64), ("nspacl", TXTS)])


_CLASS_COLUMNS = [
    ("oid", I64), ("relname", TXT), ("relnamespace", I64), ("reltype", I64),
    ("reloftype", I64), ("relowner", I64), ("relam", I64), ("relfilenode", I64),
    ("reltablespace", I64), ("relpages", I32), ("reltuples", pa.float32()),
    ("relallvisible", I32), ("reltoastrelid", I64), ("relhasindex", BOOL),
    ("relisshared", BOOL), ("relpersistence", TXT), ("relkind", TXT), ("relnatts", I16),
    ("relchecks", I16), ("relhasrules", BOOL), ("relhastriggers", BOOL),
    ("relhassubclass", BOOL), ("relrowsecurity", BOOL), ("relforcerowsecurity", BOOL),
    ("relispopulated", BOOL), ("relreplident", TXT), ("relispartition", BOOL),
    ("relrewrite", I64), ("relfrozenxid", I64), ("relminmxid", I64), ("relacl", TXTS),
    ("reloptions", TXTS), ("relpartbound", TXT),
]


def _index_rows(s: Snapshot) -> list[dict[str, Any]]:
    rows = []
    for (ns, name), key in s.keys.items():
        rows.append({
            "oid": oid_of("idx", f"{ns}.{name}"), "relname": f"{name}_pkey",
            "relnamespace": oid_of("ns", ns), "reltype": 0, "reloftype": 0,
            "relowner": OWNER_OID, "relam": BTREE_AM, "relfilenode": 0, "reltablespace": 0,
            "relpages": 0, "reltuples": -1.0, "relallvisible": 0, "reltoastrelid": 0,
            "relhasindex": False, "relisshared": False, "relpersistence": "p", "relkind": "i",
            "relnatts": len(key), "relchecks": 0, "relhasrules": False, "relhastriggers": False,
            "relhassubclass": False, "relrowsecurity": False, "relforcerowsecurity": False,
            "relispopulated": True, "relreplident": "n", "relispartition": False,
            "relrewrite": 0, "relfrozenxid": 0, "relminmxid": 0,
        })
    return rows


def pg_class(s: Snapshot) -> pa.Table:
    rows = _index_rows(s)
    for ns, name, kind, cols in s.tables:
        rows.append({
            "oid": oid_of("rel", f"{ns}.{name}"), "relname": name,
            "relnamespace": oid_of("ns", ns), "reltype": 0, "reloftype": 0,
            "relowner": OWNER_OID, "relam": HEAP_AM if kind == "r" else 0, "relfilenode": 0,
            "reltablespace": 0, "relpages": 0, "reltuples": -1.0, "relallvisible": 0,
            "reltoastrelid": 0, "relhasindex": (ns, name) in s.keys, "relisshared": False,
            "relpersistence": "p", "relkind": kind, "relnatts": len(cols), "relchecks": 0,
            "relhasrules": False, "relhastriggers": False, "relhassubclass": False,
            "relrowsecurity": False, "relforcerowsecurity": False, "relispopulated": True,
            "relreplident": "d", "relispartition": False, "relrewrite": 0,
            "relfrozenxid": 0, "relminmxid": 0,
        })
    return _table(rows, _CLASS_COLUMNS)


def visible(s: Snapshot, namespace: str) -> pa.Table:
    """The OIDs pg_table_is_visible() is true of while search_path names
    `namespace`: its tables and their keys' indexes, as PostgreSQL's is of
    the relations of search_path's schemas. It was true of every relation, so
    Django's introspection of a table `r` read every namespace's `r` (its
    columns twice, two primary keys)."""
    oids = [oid_of("rel", f"{ns}.{name}") for ns, name, _, _ in s.tables if ns == namespace]
    oids += [oid_of("idx", f"{ns}.{name}") for ns, name in s.keys if ns == namespace]
    return pa.table({"oid": pa.array(oids, I64)})


def _typmod(cairn_type: str) -> int:
    base, _, rest = cairn_type.partition("(")
    nums = [int(x) for x in rest.rstrip(")").split(",") if x.strip().isdigit()]
    if base == "DECIMAL" and len(nums) == 2:
        return ((nums[0] << 16) | nums[1]) + 4
    if base == "TEXT" and nums:
        return nums[0] + 4
    return -1


# pg_type's typcategory of each type, as PostgreSQL's (arrays: A; others U)
_CATEGORY = {t.BOOL: "B", t.CHAR: "Z", t.UNKNOWN: "X", t.INTERVAL: "T"} | {
    oid: "S" for oid in (t.NAME, t.TEXT, t.VARCHAR, t.BPCHAR)} | {
    oid: "N" for oid in (t.INT2, t.INT4, t.INT8, t.OID, t.REGPROC, t.FLOAT4, t.FLOAT8,
                         t.NUMERIC, t.REGCLASS, t.REGTYPE)} | {
    oid: "D" for oid in (t.DATE, t.TIME, t.TIMESTAMP, t.TIMESTAMPTZ)} | {
    oid: "A" for oid in t.FIXED_ARRAYS if oid != t.NAME}


def _storage(oid: int) -> str:
    """PostgreSQL's storage of a type (psql's \\d+ "Storage"): plain for a
    fixed width, main for numeric, extended for the other variable widths."""
    return "p" if t.type_size(oid) > 0 else "m" if oid == t.NUMERIC else "x"


def pg_attribute(s: Snapshot) -> pa.Table:
    rows = []
    for ns, name, _, cols in s.tables:
        rel = oid_of("rel", f"{ns}.{name}")
        for i, (col, typ, not_null, default) in enumerate(cols, start=1):
            oid = t.oid_of(typ)
            rows.append({
                "attrelid": rel, "attname": col, "atttypid": oid, "attlen": t.type_size(oid),
                "attnum": i, "attndims": 0, "atttypmod": _typmod(typ), "attnotnull": not_null,
                "atthasdef": default is not None, "attidentity": "", "attgenerated": "",
                "attisdropped": False, "attislocal": True, "attinhcount": 0,
                "attcollation": 0, "attstattarget": -1, "attstorage": _storage(oid),
                "atthasmissing": False, "attbyval": oid in (t.BOOL, t.INT2, t.INT4, t.INT8),
                "attalign": "i", "attcompression": "", "cairn_type": typ,
            })
    cols_spec = [
        ("attrelid", I64), ("attname", TXT), ("atttypid", I64), ("attlen", I16),
        ("attnum", I16), ("attndims", I16), ("atttypmod", I32), ("attnotnull", BOOL),
        ("atthasdef", BOOL), ("attidentity", TXT), ("attgenerated", TXT),
        ("attisdropped", BOOL), ("attislocal", BOOL), ("attinhcount", I32),
        ("attcollation", I64), ("attstattarget", I32), ("attstorage", TXT),
        ("atthasmissing", BOOL), ("attbyval", BOOL), ("attalign", TXT),
        ("attcompression", TXT), ("attacl", TXTS), ("attoptions", TXTS),
        ("attfdwoptions", TXTS), ("cairn_type", TXT),
    ]
    return _table(rows, cols_spec)


_NUL = re.compile(r"(\x00)")


def default_text(default: Any) -> str:
    """A DEFAULT as PostgreSQL's pg_get_expr writes it: a string quoted with
    its quotes doubled and nothing else escaped (it was Python's repr():
    `"it's"`, a backslash doubled), booleans lower case. A NUL, which no
    PostgreSQL string holds and no text field can carry, as `chr(0)`:
    `('p' || chr(0) || 'q')` (psql's `\\d` showed `'p`)."""
    if isinstance(default, str):
        if "\x00" not in default:
            return "'" + default.replace("'", "''") + "'"
        parts = ["chr(0)" if part == "\x00" else "'" + part.replace("'", "''") + "'"
                 for part in _NUL.split(default) if part]
        return "(" + " || ".join(parts) + ")"
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def pg_attrdef(s: Snapshot) -> pa.Table:
    rows = []
    for ns, name, _, cols in s.tables:
        rel = oid_of("rel", f"{ns}.{name}")
        for i, (col, _, _, default) in enumerate(cols, start=1):
            if default is not None:
                text = default_text(default)
                rows.append({"oid": oid_of("def", f"{ns}.{name}.{col}"), "adrelid": rel,
                             "adnum": i, "adbin": text})
    return _table(rows, [("oid", I64), ("adrelid", I64), ("adnum", I16), ("adbin", TXT)])


def pg_type(s: Snapshot) -> pa.Table:
    """The types Cairn sends and reads, and PostgreSQL's array type of each
    (drivers look up an array's element here: asyncpg; and a type's array:
    psycopg's TypeInfo.fetch)."""
    rows = []
    kinds = {oid: (name, size) for oid, (name, size) in t.TYPES.items()}
    for element, array_oid in t.ARRAYS.items():
        kinds.setdefault(array_oid, ("_" + t.TYPES[element][0], -1))
    # PostgreSQL's pairs: `_x`'s typelem is x, x's typarray `_x` (_char's was 0)
    by_name = {name: oid for oid, (name, _) in kinds.items()}
    elements = {oid: by_name[name[1:]] for oid, (name, _) in kinds.items() if name[0] == "_"}
    for oid, (name, size) in kinds.items():
        array = name.startswith("_")
        rows.append({
            "oid": oid, "typname": name, "typnamespace": PG_CATALOG_OID, "typowner": OWNER_OID,
            "typlen": size, "typbyval": 0 < size <= 8, "typtype": "b",
            "typcategory": "A" if array else _CATEGORY.get(oid, "U"), "typispreferred": False,
            "typisdefined": True, "typdelim": ",", "typrelid": 0,
            "typelem": elements.get(oid) or t.FIXED_ARRAYS.get(oid, 0),
            "typarray": t.ARRAYS.get(oid, 0), "typalign": "i",
            # PostgreSQL's: every array's are array_in & co. (drivers tell arrays so)
            **{column: ("array_" if array else name) + suffix for column, suffix in (
                ("typinput", "in"), ("typoutput", "out"), ("typreceive", "recv"),
                ("typsend", "send"))},
            "typstorage": _storage(oid), "typnotnull": False, "typbasetype": 0, "typtypmod": -1,
            "typndims": 0, "typcollation": 0,
        })
    spec = [
        ("oid", I64), ("typname", TXT), ("typnamespace", I64), ("typowner", I64),
        ("typlen", I16), ("typbyval", BOOL), ("typtype", TXT), ("typcategory", TXT),
        ("typispreferred", BOOL), ("typisdefined", BOOL), ("typdelim", TXT), ("typrelid", I64),
        ("typelem", I64), ("typarray", I64), ("typinput", TXT), ("typoutput", TXT),
        ("typreceive", TXT), ("typsend", TXT), ("typalign", TXT), ("typstorage", TXT),
        ("typnotnull", BOOL), ("typbasetype", I64), ("typtypmod", I32), ("typndims", I32),
        ("typcollation", I64), ("typdefault", TXT), ("typacl", TXTS),
    ]
    return _table(rows, spec)


def pg_database(s: Snapshot) -> pa.Table:
    rows = [{"oid": DATABASE_OID, "datname": DATABASE, "datdba": OWNER_OID, "encoding": 6,
             "datcollate": "C.UTF-8", "datctype": "C.UTF-8", "datallowconn": True,
             "datconnlimit": -1, "datistemplate": False, "datlocprovider": "c",
             "dattablespace": DEFAULT_TABLESPACE_OID}]
    spec = [("oid", I64), ("datname", TXT), ("datdba", I64), ("encoding", I32),
            ("datcollate", TXT), ("datctype", TXT), ("datallowconn", BOOL),
            ("datconnlimit", I32), ("datistemplate", BOOL), ("datlocprovider", TXT),
            ("daticulocale", TXT), ("daticurules", TXT), ("dattablespace", I64),
            ("datacl", TXTS)]
    return _table(rows, spec)


def pg_roles(s: Snapshot) -> pa.Table:
    rows = [{"oid": OWNER_OID, "rolname": "cairn", "rolsuper": True, "rolinherit": True,
             "rolcreaterole": False, "rolcreatedb": False, "rolcanlogin": True,
             "rolreplication": False, "rolconnlimit": -1, "rolbypassrls": False,
             "usename": "cairn", "usesysid": OWNER_OID, "usesuper": True}]
    spec = [("oid", I64), ("rolname", TXT), ("rolsuper", BOOL), ("rolinherit", BOOL),
            ("rolcreaterole", BOOL), ("rolcreatedb", BOOL), ("rolcanlogin", BOOL),
            ("rolreplication", BOOL), ("rolconnlimit", I32), ("rolbypassrls", BOOL),
            ("rolvaliduntil", TXT), ("rolconfig", TXTS), ("usename", TXT),
            ("usesysid", I64), ("usesuper", BOOL)]
    return _table(rows, spec)


def pg_am(s: Snapshot) -> pa.Table:
    return _table([{"oid": HEAP_AM, "amname": "heap", "amtype": "t"},
                   {"oid": BTREE_AM, "amname": "btree", "amtype": "i"}],
                  [("oid", I64), ("amname", TXT), ("amhandler", TXT), ("amtype", TXT)])


def pg_index(s: Snapshot) -> pa.Table:
    rows = [{"indexrelid": oid_of("idx", f"{ns}.{name}"), "indrelid": oid_of("rel", f"{ns}.{name}"),
             "indnatts": len(key), "indnkeyatts": len(key), "indisunique": True,
             "indisprimary": True, "indisexclusion": False, "indimmediate": True,
             "indisclustered": False, "indisvalid": True, "indisready": True, "indislive": True,
             "indisreplident": False, "indkey": [str(n) for _, n in key],
             "indnullsnotdistinct": False, "indclass": ["0"] * len(key),
             "indoption": ["0"] * len(key)}
            for (ns, name), key in s.keys.items()]
    return _table(rows, [("indexrelid", I64), ("indrelid", I64), ("indnatts", I16),
                         ("indnkeyatts", I16), ("indisunique", BOOL), ("indisprimary", BOOL),
                         ("indisexclusion", BOOL), ("indimmediate", BOOL),
                         ("indisclustered", BOOL), ("indisvalid", BOOL), ("indisready", BOOL),
                         ("indislive", BOOL), ("indisreplident", BOOL), ("indkey", TXTS),
                         ("indnullsnotdistinct", BOOL), ("indclass", TXTS), ("indoption", TXTS),
                         ("indexprs", TXT), ("indpred", TXT)])


def pg_constraint(s: Snapshot) -> pa.Table:
    rows = [{"oid": oid_of("con", f"{ns}.{name}"), "conname": f"{name}_pkey",
             "connamespace": oid_of("ns", ns), "contype": "p", "condeferrable": False,
             "condeferred": False, "convalidated": True, "conrelid": oid_of("rel", f"{ns}.{name}"),
             "contypid": 0, "conindid": oid_of("idx", f"{ns}.{name}"), "conparentid": 0,
             "confrelid": 0, "conislocal": True, "coninhcount": 0, "connoinherit": True,
             "conkey": [str(n) for _, n in key]}
            for (ns, name), key in s.keys.items()]
    return _table(rows, [("oid", I64), ("conname", TXT), ("connamespace", I64), ("contype", TXT),
                         ("condeferrable", BOOL), ("condeferred", BOOL), ("convalidated", BOOL),
                         ("conrelid", I64), ("contypid", I64), ("conindid", I64),
                         ("conparentid", I64), ("confrelid", I64), ("conislocal", BOOL),
                         ("coninhcount", I32), ("connoinherit", BOOL), ("conkey", TXTS),
                         ("confkey", TXTS)])


def definitions(s: Snapshot) -> pa.Table:
    """oid -> what pg_get_indexdef / pg_get_constraintdef say of it."""
    oids, texts = [], []
    for (ns, name), key in s.keys.items():
        cols = ", ".join(k for k, _ in key)
        oids += [oid_of("idx", f"{ns}.{name}"), oid_of("con", f"{ns}.{name}")]
        texts += [f"CREATE UNIQUE INDEX {name}_pkey ON {ns}.{name} USING btree ({cols})",
                  f"PRIMARY KEY ({cols})"]
    return pa.table({"oid": pa.array(oids, I64), "def": pa.array(texts, TXT)})


def info_schemata(s: Snapshot) -> pa.Table:
    rows = [{"catalog_name": DATABASE, "schema_name": n, "schema_owner": "cairn"}
            for _, n in schemas(s)]
    return _table(rows, [("catalog_name", TXT), ("schema_name", TXT), ("schema_owner", TXT)])


def info_tables(s: Snapshot) -> pa.Table:
    rows = [{"table_catalog": DATABASE, "table_schema": ns, "table_name": name,
             "table_type": "BASE TABLE" if kind == "r" else "VIEW",
             "is_insertable_into": "YES" if kind == "r" else "NO"}
            for ns, name, kind, _ in s.tables]
    return _table(rows, [("table_catalog", TXT), ("table_schema", TXT), ("table_name", TXT),
                         ("table_type", TXT), ("is_insertable_into", TXT)])


def info_columns(s: Snapshot) -> pa.Table:
    rows = []
    for ns, name, _, cols in s.tables:
        for i, (col, typ, not_null, default) in enumerate(cols, start=1):
            oid = t.oid_of(typ)
            nums = [int(x) for x in typ.partition("(")[2].rstrip(")").split(",") if x.isdigit()]
            rows.append({
                "table_catalog": DATABASE, "table_schema": ns, "table_name": name,
                "column_name": col, "ordinal_position": i,
                "column_default": None if default is None else (
                    default_text(default) if "\x00" in str(default) else str(default)),
                "is_nullable": "NO" if not_null else "YES",
                "data_type": t.pg_type_name(typ).split("(")[0],
                "udt_name": t.TYPES.get(oid, ("text", -1))[0],
                "character_maximum_length": nums[0] if typ.startswith("TEXT") and nums else None,
                "numeric_precision": nums[0] if typ.startswith("DECIMAL") and nums else None,
                "numeric_scale": nums[1] if typ.startswith("DECIMAL") and len(nums) > 1 else None,
            })
    spec = [("table_catalog", TXT), ("table_schema", TXT), ("table_name", TXT),
            ("column_name", TXT), ("ordinal_position", I32), ("column_default", TXT),
            ("is_nullable", TXT), ("data_type", TXT), ("udt_name", TXT),
            ("character_maximum_length", I32), ("numeric_precision", I32),
            ("numeric_scale", I32)]
    return _table(rows, spec)


def _empty(*columns: tuple[str, pa.DataType]) -> Callable[[Snapshot], pa.Table]:
    return lambda s: _table([], list(columns))


# name -> builder; `pg_catalog.X` and bare `X` both resolve here.
PG_CATALOG: dict[str, Callable[[Snapshot], pa.Table]] = {
    "pg_namespace": pg_namespace, "pg_class": pg_class, "pg_attribute": pg_attribute,
    "pg_attrdef": pg_attrdef, "pg_type": pg_type, "pg_database": pg_database,
    "pg_roles": pg_roles, "pg_user": pg_roles, "pg_authid": pg_roles, "pg_am": pg_am,
    "pg_index": pg_index, "pg_constraint": pg_constraint,
    "pg_inherits": _empty(("inhrelid", I64), ("inhparent", I64), ("inhseqno", I32),
                          ("inhdetachpending", BOOL)),
    "pg_description": _empty(("objoid", I64), ("classoid", I64), ("objsubid", I32),
                             ("description", TXT)),
    "pg_collation": _empty(("oid", I64), ("collname", TXT), ("collnamespace", I64)),
    "pg_tablespace": lambda s: _table(
        [{"oid": DEFAULT_TABLESPACE_OID, "spcname": "pg_default", "spcowner": OWNER_OID}],
        [("oid", I64), ("spcname", TXT), ("spcowner", I64), ("spcacl", TXTS),
         ("spcoptions", TXTS)]),
    "pg_trigger": _empty(("oid", I64), ("tgrelid", I64), ("tgname", TXT), ("tgisinternal", BOOL)),
    "pg_range": _empty(("rngtypid", I64), ("rngsubtype", I64), ("rngmultitypid", I64)),
    # No row-level security policy (psql's \dp and \z join it: they listed no table)
    "pg_policy": _empty(("oid", I64), ("polname", TXT), ("polrelid", I64), ("polcmd", TXT),
                        ("polpermissive", BOOL), ("polroles", pa.list_(I64)),
                        ("polqual", TXT), ("polwithcheck", TXT)),
    # No role is a member of another (psql's \du joins it: its list was empty)
    "pg_auth_members": _empty(("oid", I64), ("roleid", I64), ("member", I64), ("grantor", I64),
                              ("admin_option", BOOL)),
    "pg_proc": _empty(("oid", I64), ("proname", TXT), ("pronamespace", I64)),
    "pg_extension": _empty(("oid", I64), ("extname", TXT), ("extversion", TXT)),
    # Compile-time constants only (nothing of this server's settings): pgjdbc's
    # getImportedKeys/getExportedKeys failed without max_index_keys.
    "pg_settings": lambda s: _table(
        [{"name": "max_index_keys", "setting": "32"},
         {"name": "max_identifier_length", "setting": "63"}],
        [("name", TXT), ("setting", TXT)]),
    # Cairn has no sequences nor enum types: SQLAlchemy 2.x's get_columns joins
    # pg_sequence (a column's identity), its get_enums reads pg_enum
    "pg_sequence": _empty(("seqrelid", I64), ("seqtypid", I64), ("seqstart", I64),
                          ("seqincrement", I64), ("seqmax", I64), ("seqmin", I64),
                          ("seqcache", I64), ("seqcycle", BOOL)),
    "pg_opclass": _empty(("oid", I64), ("opcname", TXT), ("opcmethod", I64),
                         ("opcdefault", BOOL)),
    "pg_enum": _empty(("oid", I64), ("enumtypid", I64), ("enumsortorder", pa.float32()),
                      ("enumlabel", TXT)),
}
INFORMATION_SCHEMA: dict[str, Callable[[Snapshot], pa.Table]] = {
    "schemata": info_schemata, "tables": info_tables, "columns": info_columns,
}
