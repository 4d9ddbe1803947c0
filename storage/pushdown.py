"""A query's conditions on the primary key, applied inside each scan of the
newest-version view (storage/query.py `view_sql`) instead of only above it.

Every version of a key has the same key values, so a condition that reads
only key columns holds for all of a key's versions or for none: choosing the
newest version of each key and then filtering gives the rows that filtering
each scan first and then choosing does. DuckDB does not push a WHERE through
the view's materialized CTE and joins by itself (EXPLAIN showed the filter
above them), so without this an UPDATE or DELETE of 1% of a table carried
every row of it, payload and all, through both joins.

Only conditions that cannot fail on a value the query would not otherwise
have read are moved: comparisons, IN, BETWEEN, IS NULL, NOT/AND/OR and `%`
by a non-zero integer, over key columns of one type family with literals of
the same family (integers with integer keys, strings with TEXT keys). The
condition also stays in the query's own WHERE, so the answer is unchanged."""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp

from .names import fold
from .types import Column

_INT_TYPES = frozenset({"SMALLINT", "INT", "BIGINT"})
_LOGIC = (exp.And, exp.Or, exp.Not, exp.Paren)
_COMPARE = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between, exp.In, exp.Is)


def key_filter(expression: exp.Expression, primary_key: list[str],
               columns: list[Column]) -> str | None:
    """DuckDB SQL over unqualified key columns: the conjuncts of the WHERE of
    `expression` (a SELECT from exactly one table, no joins) that read only
    its primary key; None if there are none."""
    if not isinstance(expression, exp.Select) or expression.args.get("joins"):
        return None
    tables = list(expression.find_all(exp.Table))
    where = expression.args.get("where")
    source = expression.args.get("from") or expression.args.get("from_")
    if (len(tables) != 1 or where is None or not isinstance(source, exp.From)
            or source.this is not tables[0] or renames(tables[0])):
        return None
    alias = fold(tables[0].alias_or_name)
    types = {c["name"]: c["type"] for c in columns}
    families = {"int" if types.get(k) in _INT_TYPES else "text" if types.get(k) == "TEXT"
                else "" for k in primary_key}
    if len(families) != 1 or "" in families:
        return None
    family = families.pop()
    out = []
    todo = [where.this]
    while todo:
        node = todo.pop()
        if isinstance(node, exp.And):
            todo += [node.left, node.right]
        elif isinstance(node, exp.Paren) and isinstance(node.this, exp.And):
            todo.append(node.this)
        elif _movable(node, alias, primary_key, family):
            part = node.copy()
            for col in part.find_all(exp.Column):
                col.set("table", None)
            out.append(f"({part.sql(dialect='duckdb')})")
    return " AND ".join(sorted(out)) or None


def _movable(node: exp.Expression, alias: str, primary_key: list[str], family: str) -> bool:
    """Does `node` read only key columns, with operations that cannot fail?"""
    if not any(isinstance(n, exp.Column) for n in node.walk()):
        return False  # a constant: nothing to gain, leave it where it is
    for n in node.walk():
        if isinstance(n, exp.Column):
            if (n.args.get("db") is not None or fold(n.name) not in primary_key
                    or (n.table and fold(n.table) != alias)
                    or not isinstance(n.this, exp.Identifier)):
                return False
        elif isinstance(n, exp.Literal):
            if n.is_string != (family == "text"):
                return False
            if not n.is_string and not re.fullmatch(r"[0-9]+", n.this):
                return False  # decimals, exponents: leave casts to the query
        elif isinstance(n, exp.Mod):
            divisor = n.expression
            if (family != "int" or not isinstance(divisor, exp.Literal) or divisor.is_string
                    or not re.fullmatch(r"[0-9]+", divisor.this) or int(divisor.this) == 0):
                return False
        elif isinstance(n, exp.In):
            if n.args.get("query") is not None or n.args.get("unnest") is not None:
                return False
        elif not isinstance(n, (*_LOGIC, *_COMPARE, exp.Neg, exp.Null, exp.Identifier)):
            return False
    return True


def point_key(expression: exp.Expression, columns: list[Column], primary_key: list[str],
              tables: list[exp.Table] | None = None) -> dict[str, Any] | None:
    """{pk column: value} if `expression` reads one table, its FROM, and its WHERE requires
    `pk = literal` for every key column (top-level AND), with integer literals
    for integer columns and string literals for TEXT ones; else None.
    `tables`: every table node of the tree, if the caller has them."""
    if not isinstance(expression, exp.Select):
        return None
    if tables is None:
        tables = list(expression.find_all(exp.Table))
    where = expression.args.get("where")
    source = expression.args.get("from_") or expression.args.get("from")
    # The key is the table's own only where the table is this SELECT's FROM (as
    # pushdown.key_filter and direct.answer check): over a derived table, a CTE
    # or no FROM, `k` is another thing's column, and cutting the snapshot to
    # that key lost rows (`FROM (SELECT k + 1 AS k FROM t) s WHERE k = 1`).
    if (len(tables) != 1 or where is None or expression.args.get("joins")
            or not isinstance(source, exp.From) or source.this is not tables[0]
            or renames(tables[0])):
        return None
    alias = fold(tables[0].alias_or_name)
    types = {c["name"]: c["type"] for c in columns}
    found: dict[str, Any] = {}
    for node in conjuncts(where.this):
        if isinstance(node, exp.EQ):
            for col, lit in ((node.left, node.right), (node.right, node.left)):
                if not isinstance(col, exp.Column) or col.args.get("db") is not None:
                    continue
                name = fold(col.name)
                if name not in primary_key or (col.table and fold(col.table) != alias):
                    continue
                value = _literal(lit, types.get(name))  # type: ignore[arg-type]
                if value is None:
                    continue
                if name in found and found[name] != value:
                    return None  # id = 1 AND id = 2: leave it to DuckDB
                found[name] = value
    return found if len(found) == len(primary_key) else None


def renames(table: exp.Table) -> bool:
    """Does the FROM item give the table's columns names of its own: an alias
    with a column list (`FROM ns.t AS x(kk, k)`: `k` is the table's second
    column), a PIVOT or UNPIVOT (`UNPIVOT (k FOR n IN (k, a))`: `k` holds
    every listed column's values)? Then a name in the WHERE is not the
    table's column of that name, and no shortcut that reads names by the
    table's own (the key cut, the key filter, the direct answer) may be taken."""
    alias = table.args.get("alias")
    return bool(table.args.get("pivots") or table.args.get("laterals")
                or alias is not None and alias.args.get("columns"))


def conjuncts(node: Any) -> list[Any]:
    """The terms of a WHERE's ANDs, parentheses opened."""
    out: list[Any] = []
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, exp.Paren):
            todo.append(n.this)
        elif isinstance(n, exp.And):
            todo += [n.left, n.right]
        else:
            out.append(n)
    return out


def _literal(node: exp.Expression, typ: str | None) -> Any:
    neg = False
    if isinstance(node, exp.Neg):
        node, neg = node.this, True
    if not isinstance(node, exp.Literal):
        return None
    if typ in _INT_TYPES and not node.is_string and re.fullmatch(r"[0-9]+", node.this):
        return -int(node.this) if neg else int(node.this)
    if typ == "TEXT" and node.is_string and not neg:
        return node.this
    return None
