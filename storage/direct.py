"""The answer to the simplest point lookup, without DuckDB.

`SELECT a, b FROM ns.t WHERE pk = 1` (plain columns, a WHERE of nothing but
the key's equalities, nothing else) over a snapshot that holds no file and at
most one buffered version of the key (query.py cuts the buffer to the key and
picks its newest version) is that row's columns. DuckDB would plan and run a
query for it (~1.5 ms on two busy cores, most of such a request's cost); here
it is a column selection in Arrow. The answer has the types and names DuckDB
gives for the same columns (only types it returns unchanged are taken; any
other query, or any doubt, goes to DuckDB: None)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from .names import fold
from .pushdown import conjuncts, renames
from .timing import WouldWait

if TYPE_CHECKING:
    from .pointcache import PointCache
    from .query import Snapshot

# Clauses a direct answer allows on the SELECT (anything else set: DuckDB).
_ALLOWED = {"expressions", "from", "from_", "where", "kind"}


_SAME = frozenset([pa.string(), pa.binary(), pa.date32(), pa.timestamp("us"), pa.bool_(),
                   pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
                   pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64()])


def _same_as_duckdb(t: pa.DataType) -> bool:
    """Arrow types DuckDB hands back as they came in (via its own type)."""
    return t in _SAME


def _own_column(node: Any, alias: str) -> str | None:
    """The lower-case name of a plain column of the table, else None."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return None
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        return None
    if node.table and fold(node.table) != alias:
        return None
    name = node.this.this
    return name if isinstance(name, str) and name == fold(name) else None


def _value(node: Any, typ: str | None) -> object:
    """The key value a literal names for a column of type `typ` (as the point
    lookup reads it), or None."""
    neg = isinstance(node, exp.Neg)
    lit = node.this if neg else node
    if not isinstance(lit, exp.Literal):
        return None
    if typ in ("SMALLINT", "INT", "BIGINT") and not lit.is_string and lit.this.isdigit():
        return -int(lit.this) if neg else int(lit.this)
    if typ == "TEXT" and lit.is_string and not neg:
        return lit.this
    return None


def answer(expression: exp.Expression, table: exp.Table, snap: Snapshot,
           point: dict[str, object] | None,
           files: Callable[[Snapshot, dict[str, object], list[str]], pa.Table | None]
           | None = None) -> pa.Table | None:
    """The query's answer from the snapshot's one buffered row, or (`files`,
    `from_files` bound to the engine's cache) its one row in the files, or None."""
    if point is None or not isinstance(expression, exp.Select):
        return None
    if (snap.files and files is None) or snap.buffer.num_rows > 1 or not snap.append_only:
        return None  # a file to read, or versions to choose between: DuckDB
    if any(v for k, v in expression.args.items() if k not in _ALLOWED):
        return None
    frm = expression.args.get("from_") or expression.args.get("from")
    if not isinstance(frm, exp.From) or frm.this is not table:
        return None
    if renames(table) or any(table.args.get(a) for a in ("joins", "sample", "hints")):
        return None  # (`AS x(k, s, j)`: `j` is the table's `s`)
    alias = fold(table.alias_or_name)
    types = {c["name"]: c["type"] for c in snap.columns}
    where = expression.args.get("where")
    if where is None:
        return None
    for c in conjuncts(where.this):  # every one `pk = the point's value`
        if not isinstance(c, exp.EQ):
            return None
        name, lit = _own_column(c.left, alias), c.right
        if name is None:
            name, lit = _own_column(c.right, alias), c.left
        if name is None or name not in point or _value(lit, types.get(name)) != point[name]:
            return None
    names: list[str] = []
    for item in expression.expressions:
        name = _own_column(item, alias)
        if name is None or name in names or name not in types:
            return None
        names.append(name)
    if snap.files and files is not None:
        return files(snap, point, names)
    return from_snapshot(snap, point, names)


def from_snapshot(snap: Snapshot, point: dict[str, object], names: list[str]) -> pa.Table | None:
    """The columns `names` (distinct columns of the table, in the answer's
    order) of the snapshot's one buffered row of `point`, or None. The
    part of `answer` after the query's shape is known: also what a fast-path
    point SELECT read without its tree asks (storage/fast.py)."""
    if snap.files or snap.buffer.num_rows > 1 or not snap.append_only:
        return None  # a file to read, or versions to choose between: DuckDB
    rows = snap.buffer
    if rows.num_rows and any(rows.column(k)[0].as_py() != v for k, v in point.items()):
        return None
    schema = rows.schema  # one wrapper (each `rows.schema` makes a new one)
    fields, columns = [], []
    for name in names:
        i = schema.get_field_index(name)
        typ = schema.field(i).type if i >= 0 else None
        if typ is None or not _same_as_duckdb(typ):
            return None
        fields.append(pa.field(name, typ))
        columns.append(rows.column(i))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


# Parquet types DuckDB reads back as pyarrow does (a half float comes out of
# DuckDB's Parquet reader as FLOAT: not taken).
_FROM_FILES = _SAME - {pa.float16()}
MAX_FILES = 4  # files a point lookup may look in off the cache (more: DuckDB)


def from_files(snap: Snapshot, point: dict[str, object], names: list[str], cache: PointCache,
               abs_path: Callable[[str], Path], may_read: bool) -> pa.Table | None:
    """The columns `names` of the key's one row in the snapshot's files, when
    no version of it is buffered and the table is append-only (so the files
    hold at most one), read off the files' tables in `cache`
    (storage/pointcache.py): what DuckDB's scan of those files gives. None,
    for DuckDB: no file, too many, a file too large to cache, a column added
    after a file was written (DuckDB fills its default), a type DuckDB reads
    differently, the key in no file (DuckDB gives the empty answer its
    types), any doubt. WouldWait if a file must be read first and `may_read`
    is False (on the event loop)."""
    files = snap.files
    if (not files or len(files) > MAX_FILES or snap.buffer.num_rows or not snap.append_only
            or len(point) != 1):
        return None
    ((key, value),) = point.items()
    since = {c["name"]: c.get("since", 1) for c in snap.columns}
    found: tuple[pa.Table, int] | None = None
    for f in files:
        if any(n not in since or since[n] > f.schema_version for n in (*names, key)):
            return None
        table = cache.get(f.path)
        if table is None:
            if not cache.wanted(f.path, f.bytes):
                return None
            if not may_read:
                raise WouldWait("a file to read")
            table = cache.load(f.path, abs_path(f.path))
            if table is None:
                return None
        if key not in table.column_names:
            return None
        hits = cache.rows(f.path, table, key, value)
        if hits is None:
            return None
        if not hits:
            continue
        if len(hits) > 1 or found is not None:
            return None  # not append-only after all: DuckDB
        found = (table, hits[0])
    if found is None:
        return None
    table, row = found
    fields, columns = [], []
    for name in names:
        if name not in table.column_names:
            return None
        column = table.column(name)
        if column.type not in _FROM_FILES:
            return None
        fields.append(pa.field(name, column.type))
        columns.append(column.slice(row, 1))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
