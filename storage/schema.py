"""Table definitions: columns and options checked, system columns added,
schema versions made by ALTER TABLE."""

from __future__ import annotations

from typing import Any

from catalog import Catalog, Table, TableSchema
from catalog.errors import InvalidArgument
from catalog.records import SEP

from .literal_range import number_problem
from .names import fold
from .sql_text import sql_text
from .types import DELETED, HIDDEN, ID, UPDATED, Column, canonical_type, coerce, stored_default

TABLE_KINDS = ("shared", "user", "stream")
SYSTEM_COLUMNS = (ID, UPDATED, DELETED)
RESERVED_COLUMNS = frozenset((*HIDDEN, *SYSTEM_COLUMNS))

# What a backup's manifest holds (storage/backup/schema.py reads it with these).
OPTION_MAX = 2**63 - 1
FLOAT_OPTION_MAX = 2**63 - 1024  # the largest double not past OPTION_MAX
MAX_COLUMNS = 4096  # of a table, Cairn's own (_id, _updated, _deleted) included
# Every schema version keeps every column and its DEFAULT again, and a backup's
# manifest (64 MiB at most, storage/backup/records.py) holds every version of
# every table: a 4 MiB DEFAULT and 16 ALTERs made a namespace no BACKUP took.
MAX_DEFAULT_BYTES = 65536  # a DEFAULT as kept, its text in UTF-8
MAX_SCHEMA_HISTORY = 32 << 20  # a namespace's schema versions, as the catalog keeps them
OPTIONS: dict[str, tuple[tuple[str, ...], type, float]] = {
    # name: (table kinds it applies to, value type, smallest value)
    "flush_rows": (("shared", "user"), int, 1),
    "flush_interval_seconds": (("shared", "user"), float, 0.001),
    "ttl_seconds": (("stream",), float, 0.001),
    "max_buffer": (("stream",), int, 1),
}


def check_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        spec = OPTIONS.get(key)
        if spec is None:
            raise InvalidArgument(
                f"unknown table option '{key}'; options are {', '.join(OPTIONS)}"
            )
        kinds, typ, least = spec
        if kind not in kinds:
            raise InvalidArgument(f"option '{key}' applies to {'/'.join(kinds).upper()} tables, "
                                  f"not {kind.upper()}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(f"option '{key}' must be a number, not {sql_text(value)}")
        if typ is int and value != int(value):
            raise InvalidArgument(f"option '{key}' must be a whole number, not {sql_text(value)}")
        if value < least:
            raise InvalidArgument(f"option '{key}' must be positive, not {sql_text(value)}")
        if not typ(value) <= OPTION_MAX:  # what a backup's manifest holds (NaN fails too)
            # As stored: 2^63 - 1 seconds is the double 2^63, which no manifest
            # holds (it was taken, and every BACKUP of its namespace failed).
            most = OPTION_MAX if typ is int else FLOAT_OPTION_MAX
            raise InvalidArgument(f"option '{key}' must be at most {most}, not {sql_text(value)}")
        out[key] = typ(value)
    return out


def column_from_def(d: Any, since: int) -> Column:
    """A column dict from a parsed `ColumnDef` (or a dict with the same fields)."""
    get = d.get if isinstance(d, dict) else lambda k, default=None: getattr(d, k, default)
    name = fold(str(get("name")))
    tspec = get("type")
    tname = tspec.get("name") if isinstance(tspec, dict) else getattr(tspec, "name", tspec)
    params = tspec.get("params", ()) if isinstance(tspec, dict) else getattr(tspec, "params", ())
    if name in RESERVED_COLUMNS:
        raise InvalidArgument(f"column name '{name}' is reserved for Cairn's own columns")
    if not name or len(name) > 64:
        raise InvalidArgument(f"bad column name '{name}'")
    typ, params = canonical_type(str(tname), tuple(params or ()), name)
    col: Column = {
        "name": name,
        "type": typ,
        "params": params,
        "not_null": bool(get("not_null", False) or get("primary_key", False)),
        "primary_key": bool(get("primary_key", False)),
        "has_default": bool(get("has_default", False)),
        "default": get("default") if get("has_default", False) else None,
        "system": False,
        "since": since,
    }
    if col["primary_key"] and typ == "JSON":
        raise InvalidArgument(f"column '{name}': a JSON column cannot be a PRIMARY KEY")
    if col["has_default"]:
        _check_default_size(name, col["default"])  # before the work of reading it
        _check_default_number(col["default"])
        try:
            value = coerce({**col, "not_null": False}, col["default"])
        except InvalidArgument as exc:
            raise InvalidArgument(f"bad DEFAULT for column '{name}': {exc.message}") from None
        if value is None and col["not_null"]:
            raise InvalidArgument(f"column '{name}' is NOT NULL but its DEFAULT is NULL")
        col["default"] = stored_default(col, value)
        _check_default_size(name, col["default"])
    return col


def _check_default_number(default: Any) -> None:
    """A DEFAULT's number literal refused as anywhere else (`literal_range`):
    CREATE TABLE and ADD COLUMN took DEFAULT <50 digits>, which every query
    refused. A DEFAULT kept before is not read through here."""
    text = str(default) if isinstance(default, int) and not isinstance(default, bool) \
        else getattr(default, "sql", None)  # an ExponentNumber's text, as written
    if isinstance(text, str) and (wrong := number_problem(text)) is not None:
        raise InvalidArgument(wrong)


def _check_default_size(name: str, default: Any) -> None:
    size = len(default.encode("utf-8", "surrogatepass")) if isinstance(default, str) else 0
    if size > MAX_DEFAULT_BYTES:
        raise InvalidArgument(
            f"column '{name}': a DEFAULT holds at most {MAX_DEFAULT_BYTES} bytes (its text in "
            f"UTF-8), not {size}: every schema version, and every backup, keeps it again")


def system_column(name: str) -> Column:
    typ = {ID: "BIGINT", UPDATED: "TIMESTAMP", DELETED: "BOOLEAN"}[name]
    return {
        "name": name, "type": typ, "params": [], "not_null": True,
        "primary_key": name == ID, "has_default": False, "default": None,
        "system": True, "since": 1,
    }  # fmt: skip


def new_columns(kind: str, defs: list[Any]) -> tuple[list[Column], list[str]]:
    """The columns of a new table and its primary key."""
    if kind not in TABLE_KINDS:
        raise InvalidArgument(f"unknown table type '{kind}'; types are SHARED, USER, STREAM")
    if not defs:
        raise InvalidArgument("a table needs at least one column")
    cols: list[Column] = []
    for d in defs:
        col = column_from_def(d, 1)
        if any(c["name"] == col["name"] for c in cols):
            raise InvalidArgument(f"duplicate column '{col['name']}'")
        cols.append(col)
    key = [c["name"] for c in cols if c["primary_key"]]
    if not key:
        cols.append(system_column(ID))
        key = [ID]
    if kind in ("shared", "user"):
        cols += [system_column(UPDATED), system_column(DELETED)]
    _check_width(cols)
    return cols, key


def _check_width(cols: list[Column]) -> None:
    if len(cols) > MAX_COLUMNS:  # a backup's manifest holds no more (nor could be restored)
        shown = sum(1 for c in cols if not c["system"])
        raise InvalidArgument(f"a table has at most {MAX_COLUMNS} columns with Cairn's own "
                              f"({MAX_COLUMNS - len(cols) + shown} of yours here), not {shown}")


def add_column(current: TableSchema, d: Any, *, if_not_exists: bool = False) -> list[Column] | None:
    """The columns with `d` added; None if the table has a column of its name
    and `if_not_exists` (nothing changes, whatever type that column has, as in
    PostgreSQL)."""
    version = current.version + 1
    col = column_from_def(d, version)
    if any(c["name"] == col["name"] for c in current.columns):
        if if_not_exists:
            return None
        raise InvalidArgument(
            f"duplicate column '{col['name']}': table {current.namespace}.{current.table_name} "
            "already has it"
        )
    if col["primary_key"]:
        raise InvalidArgument("ALTER TABLE cannot add a PRIMARY KEY column")
    if col["not_null"] and not col["has_default"]:
        raise InvalidArgument(
            f"column '{col['name']}' is NOT NULL, so it needs a DEFAULT for the rows already stored"
        )
    user_cols = [c for c in current.columns if not c.get("system")]
    sys_cols = [c for c in current.columns if c.get("system")]
    _check_width([*user_cols, col, *sys_cols])
    return [*user_cols, col, *sys_cols]


def drop_column(current: TableSchema, name: str, *, if_exists: bool = False) -> list[Column] | None:
    """The columns without `name`; None if there is none of that name and `if_exists`."""
    name = fold(name)
    col = next((c for c in current.columns if c["name"] == name), None)
    where = f"{current.namespace}.{current.table_name}"
    if col is None:
        if if_exists:
            return None
        raise InvalidArgument(f"Column '{name}' does not exist in table {where}")
    if col.get("system"):
        raise InvalidArgument(f"Column '{name}' is a system column and cannot be dropped")
    if col.get("primary_key"):
        raise InvalidArgument(f"Column '{name}' is part of the primary key and cannot be dropped")
    rest = [c for c in current.columns if c["name"] != name]
    if not any(not c.get("system") for c in rest):
        raise InvalidArgument(f"cannot drop '{name}': it is the last column of {where}")
    return rest


def check_history(catalog: Catalog, new: TableSchema, statement: str) -> None:
    """INVALID_ARGUMENT if adding `new` (a table's first or next version) to the
    catalog would make its namespace's schema versions take more than
    MAX_SCHEMA_HISTORY bytes as stored: at most half of what a backup's
    manifest holds (the JSON the catalog keeps is no smaller than what a
    manifest writes of a version), the other half left for its files."""
    ns = new.namespace
    sizes = _namespace_history(catalog, ns)
    size, versions = sizes.get(new.table_name, (0, 0))
    sizes[new.table_name] = (size + len(new.dumps()), versions + 1)
    _bound(ns, sizes, MAX_SCHEMA_HISTORY, statement)


def check_restored_history(catalog: Catalog, ns: str, tables: dict[str, list[TableSchema]],
                           statement: str, *, whole: bool, kept: int = 0) -> None:
    """INVALID_ARGUMENT if a restore installing `tables` (each with every
    version it brings) into namespace `ns` would take its schema history past
    MAX_SCHEMA_HISTORY, past what it held and past `kept`, the history of
    the backup it restores: a RESTORE TABLE (the table of its name, if
    replaced, no longer counted) as a CREATE TABLE is, a whole namespace
    (`whole`: what it replaces gone) only by a replay of archived DDL. A
    backup taken before the bound restores as it was; a namespace over it
    from before may replace a table by one no longer."""
    present = _namespace_history(catalog, ns)
    held = sum(size for size, _ in present.values())
    sizes = {} if whole else present
    for name, versions in tables.items():
        sizes[name] = (history_bytes(versions), len(versions))
    _bound(ns, sizes, max(MAX_SCHEMA_HISTORY, held, kept), statement)


def history_bytes(versions: list[TableSchema]) -> int:
    """The bytes the catalog keeps of these schema versions."""
    return sum(len(v.dumps()) for v in versions)


def _namespace_history(catalog: Catalog, ns: str) -> dict[str, tuple[int, int]]:
    return {t.name: _kept_history(catalog, t.uid) for t in catalog.scan(Table, ns + SEP)}


def _bound(ns: str, sizes: dict[str, tuple[int, int]], allowed: int, statement: str) -> None:
    """INVALID_ARGUMENT if the tables' histories (`sizes`: bytes and versions
    by table name) together take more than `allowed` bytes."""
    total = sum(size for size, _ in sizes.values())
    if total <= allowed:
        return
    name, (size, versions) = max(sizes.items(), key=lambda item: item[1][0])
    raise InvalidArgument(
        f"{statement} would make namespace '{ns}' keep {total} bytes of schema history (every "
        f"version of every table's columns with their defaults), over the {MAX_SCHEMA_HISTORY} "
        f"a namespace may keep so that a backup's manifest holds it; {ns}.{name} takes {size} "
        f"of it in {versions} version(s). A new table starts with one version: copy a table "
        "with a long history into a new one (CREATE TABLE, then INSERT INTO ... SELECT) and "
        "drop it, or drop a table no longer needed")


def _kept_history(catalog: Catalog, uid: str) -> tuple[int, int]:
    """The bytes a table's schema versions take in the catalog, and how many."""
    size = versions = 0
    first = (uid + SEP).encode()
    for raw in catalog.values_raw(TableSchema.FAMILY, first, first[:-1] + b"\x01"):
        size += len(raw)
        versions += 1
    return size, versions


def describe_change(old: TableSchema | None, new: TableSchema) -> str:
    if old is None:
        return "CREATE TABLE"
    before = {c["name"] for c in old.columns}
    after = {c["name"] for c in new.columns}
    added = [c for c in new.columns if c["name"] not in before]
    dropped = [c["name"] for c in old.columns if c["name"] not in after]
    parts = [f"ADD COLUMN {c['name']}" for c in added] + [f"DROP COLUMN {n}" for n in dropped]
    return ", ".join(parts) or "no change"
