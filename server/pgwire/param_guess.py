"""The type of a `$n` told by its place in a statement (Parse without a
type for it): the column it is written into or compared with, the type it
is cast to, an array of what `x = ANY($n)` compares it with; and the column
an INSERT's VALUES or an UPDATE's SET writes it into."""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

from . import arrays, param_columns
from . import types as t

Target = tuple[str, str]  # the column (name, Cairn type) a parameter is written into

_OID_OF_DTYPE = {
    "BOOLEAN": t.BOOL, "SMALLINT": t.INT2, "INT": t.INT4, "BIGINT": t.INT8, "FLOAT": t.FLOAT4,
    "DOUBLE": t.FLOAT8, "DECIMAL": t.NUMERIC, "TEXT": t.TEXT, "VARCHAR": t.TEXT,
    "BLOB": t.BYTEA, "VARBINARY": t.BYTEA, "DATE": t.DATE, "TIMESTAMP": t.TIMESTAMPTZ,
    "TIMESTAMPTZ": t.TIMESTAMPTZ, "JSON": t.JSON, "TINYINT": t.INT2, "UBIGINT": t.NUMERIC,
    "OID": t.OID, "UUID": t.UUID,
    "TIMESTAMPNTZ": t.TIMESTAMP,  # sqlglot's name of TIMESTAMP and DATETIME: `$1::TIMESTAMP`
}  # fmt: skip


def number(node: exp.Column, mark: str) -> int:
    """n of a column that is the parameter `$n` (`mark`n), else 0."""
    name = node.name.lower()
    if node.table or not name.startswith(mark) or not name[len(mark):].isdigit():
        return 0
    return int(name[len(mark):])


def guess(node: exp.Expression, binder: param_columns.Binder, mark: str,
          compared: dict[int, str | None]) -> int:
    """The OID `node`'s place tells (0: nothing). `compared`: the Cairn type
    of the columns each expression compares with, found once (a memo)."""
    target = target_of(node, binder)
    if target:
        return t.oid_of(target[1])
    parent = node.parent
    while isinstance(parent, exp.Paren):
        node, parent = parent, parent.parent
    if isinstance(parent, exp.Cast):
        return _oid_of_cast(parent.to)
    if isinstance(parent, exp.Any | exp.Anonymous) and _is_any(parent) and isinstance(
            parent.parent, exp.Binary):
        # `x = ANY($n)`, `x <> ALL($n)`: an array of what it is compared with
        element = guess(parent, binder, mark, compared)
        return arrays.ARRAY_OF.get(element, 0)
    if isinstance(parent, exp.Limit | exp.Offset):
        return t.INT8
    if isinstance(parent, exp.JSONExtract | exp.JSONExtractScalar) and parent.expression is node:
        # `j ->> $1`, json_extract_string(j, $1): a key or path, text (sqlglot's
        # nodes are Binary: it took the JSON column's type, and 'x' was bad JSON)
        return t.TEXT
    if isinstance(parent, exp.Binary | exp.Between | exp.In):
        # The columns it is compared with: one type among them, or none. The
        # same for every parameter of the expression (a side holding one is
        # passed over), so found once: `k IN ($1, …, $n)` was n² (1,000 $n:
        # 1.8 s of a Parse, 4,000: 28 s).
        if id(parent) not in compared:
            sides = [s.unnest() for s in parent.iter_expressions()]
            # A column of no one type makes it text; another expression whose
            # type cannot be told (a subquery, `k + 1`) is passed over.
            known = [(s, binder.value_type(s)) for s in sides
                     if not isinstance(s, exp.Literal) and not _mentions(s, mark)]
            types = {typ for s, typ in known if typ or isinstance(s, exp.Column)}
            compared[id(parent)] = param_columns.one_type(types)
        typ = compared[id(parent)]
        return t.oid_of(typ) if typ else 0
    return 0


# Where DuckDB casts a string to the other side's type (not `v + $1`).
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ,
                exp.NullSafeNEQ, exp.Between, exp.In)


_DECIMAL = re.compile(r"DECIMAL(?:\([0-9]{1,2},[0-9]{1,2}\))?")


def place_kind(node: exp.Expression, binder: param_columns.Binder, mark: str,
               compared: dict[int, str | None]) -> str:
    """The kind of the column(s) a parameter's place writes it into or
    compares it with (`v = $1`, `v BETWEEN $1 AND $2`, `v IN ($1)`): 'DECIMAL'
    (written into one), 'COMPARED' (compared with DECIMALs: DuckDB casts its
    text to their type, as the HTTP literal's; as a number, `c = '1.005'`
    missed the 1.01 the literal finds in a DECIMAL(10,2), and '1.5' against a
    DECIMAL(9,9) was no refusal), 'TEXT' (TEXT, VARCHAR), 'ANY DECIMAL(p,s)'
    (an array compared by ANY, ALL or SOME with DECIMAL(p,s) columns), ''
    anything else."""
    target = target_of(node, binder)
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    if isinstance(parent, exp.Any | exp.Anonymous) and _is_any(parent) and isinstance(
            parent.parent, _COMPARISONS):  # `c = ANY($1)`: 'ANY DECIMAL(p,s)', c's type
        guess(parent, binder, mark, compared)
        of = (compared.get(id(parent.parent)) or "").upper().replace(" ", "")
        return f"ANY {of}" if _DECIMAL.fullmatch(of) else ""
    if target:
        typ: str | None = target[1]
    elif isinstance(parent, _COMPARISONS):
        guess(node, binder, mark, compared)  # the type compared with, found once an expression
        typ = compared.get(id(parent))
    else:
        return ""
    base = (typ or "").split("(", 1)[0].strip().upper()
    if base == "DECIMAL" and not target:
        return "COMPARED"
    return {"DECIMAL": "DECIMAL", "TEXT": "TEXT", "VARCHAR": "TEXT"}.get(base, "")


def _oid_of_cast(to: exp.DataType) -> int:
    """The OID of a cast's type; `T[]` of one dimension is T's array type."""
    if to.this == exp.DataType.Type.ARRAY and len(to.expressions) == 1:
        inner = to.expressions[0]
        if isinstance(inner, exp.DataType) and inner.this != exp.DataType.Type.ARRAY:
            return arrays.ARRAY_OF.get(_oid_of_cast(inner), 0)
        return 0
    if to.this == exp.DataType.Type.USERDEFINED:  # `oid`, which sqlglot does not know
        return _OID_OF_DTYPE.get(str(to.args.get("kind") or "").upper(), 0)
    return _OID_OF_DTYPE.get(to.this.name if hasattr(to.this, "name") else "", 0)


def _is_any(node: exp.Expression) -> bool:
    """`ANY(…)` (sqlglot's own node), or `ALL(…)` and `SOME(…)` (calls by name)."""
    return isinstance(node, exp.Any) or (
        isinstance(node, exp.Anonymous) and str(node.this).upper() in ("ALL", "SOME")
        and len(node.expressions) == 1)


def _mentions(node: Any, mark: str) -> bool:
    """Does `node` hold a parameter (`mark`n)?"""
    return any(number(c, mark) for c in node.find_all(exp.Column))


def target_of(node: exp.Expression, binder: param_columns.Binder) -> Target | None:
    """The column a parameter is written into: its place in an INSERT's
    VALUES, or `SET column = $n` of an UPDATE."""
    parent = node.parent
    while isinstance(parent, exp.Paren):
        node, parent = parent, parent.parent
    found: tuple[str, str] | None = None
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Values):
        insert = parent.parent.parent
        if isinstance(insert, exp.Insert):
            place = node.index if node.index is not None else next(  # its place: O(1)
                i for i, e in enumerate(parent.expressions) if e is node)
            found = binder.insert_target(insert, place)
    elif isinstance(parent, exp.Values) and isinstance(parent.parent, exp.Insert):
        found = binder.insert_target(parent.parent, 0)
    elif (isinstance(parent, exp.EQ) and isinstance(parent.parent, exp.Update)
          and isinstance(parent.this, exp.Column) and parent.expression is node):
        found = binder.update_target(parent.parent, parent.this)
    if found is None:
        return None
    return found[0], found[1].split("(", 1)[0].strip().upper()
