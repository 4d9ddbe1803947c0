"""The table column a `$n` is compared with or written into, bound as SQL
binds names, by the binder of the storage rewrite (storage/scopes.py): the
nearest query level first, then the queries around it; a qualified name by
its alias, or by namespace and table; a table by its namespace and name.

Tables were looked up by bare name (of `r1a.s` and `r1b.s`, the later won)
and an unqualified column took the first table with a column of its name,
in any subquery: `DELETE FROM r1a.s WHERE v = $1 AND k IN (SELECT k FROM
r1b.s)` typed `$1` from r1b.s's BIGINT `v`, so '7' also matched '007'.
Where the column is not one that can be told (an unknown table, a `*`
subquery, two columns of different types), there is no column: the
parameter stays text, as an HTTP literal is."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from storage import scopes
from storage.sandbox import cte_references, fold

Lookup = Callable[[str | None, str], "dict[str, str] | None"]  # (ns, table) -> column -> type

MAX_DEPTH = 16  # subqueries and CTEs followed to the table a column comes from


class Binder:
    """Columns of one statement's tree, bound to their tables."""

    def __init__(self, tree: exp.Expression, lookup: Lookup, default_ns: str | None) -> None:
        self.lookup = lookup
        self.default_ns = fold(default_ns) if default_ns else None
        self.ctes = cte_references(tree)
        self.known: dict[tuple[str | None, str], dict[str, str] | None] = {}

    def table(self, node: exp.Expression) -> dict[str, str] | None:
        """A Cairn table reference's {column: type}, or None (not a table,
        a CTE, a table that does not exist)."""
        if not isinstance(node, exp.Table) or id(node) in self.ctes or node.catalog \
                or not isinstance(node.this, exp.Identifier):
            return None
        key = (fold(node.db) or None, fold(node.name))
        if key not in self.known:
            self.known[key] = self.lookup(*key)
        return self.known[key]

    def _names(self, node: exp.Table) -> list[str] | None:
        cols = self.table(node)
        return None if cols is None else list(cols)

    def type_of(self, col: exp.Column, depth: int = 0) -> str | None:
        """The Cairn type of the table column `col` reads, or None."""
        if isinstance(col.this, exp.Star):
            return None
        found = scopes.bind(col, self.default_ns, self.ctes, self._names)
        if not found or col.table and len(found) > 1:
            return None  # a qualifier naming two tables: DuckDB's "Ambiguous reference"
        # An unqualified name in two tables is one column only in a join's
        # USING (or NATURAL): then of one type.
        types = {self._item_type(item, fold(col.name), depth) for item in found}
        return types.pop() if len(types) == 1 else None

    def _item_type(self, item: exp.Expression, name: str, depth: int) -> str | None:
        cols = self.table(item)
        if cols is not None:
            if scopes.alias_columns(item) or item.args.get("pivots"):
                return None  # `t AS x(k, n, v)`, an UNPIVOT: not the table's names
            return cols.get(name)
        if depth >= MAX_DEPTH:
            return None
        alias = item.args.get("alias")
        if isinstance(item, exp.Subquery):
            query: exp.Expression = item.this
        elif isinstance(item, exp.Table) and id(item) in self.ctes:
            cte = scopes.cte_of(item)
            if cte is None:
                return None
            query = cte.this
            if not (isinstance(alias, exp.TableAlias) and alias.columns):
                alias = cte.args.get("alias")  # WITH c(a, b) AS (...)
        else:
            return None
        return self._output_type(query, alias, name, depth + 1)

    def _output_type(self, query: exp.Expression, alias: exp.Expression | None, name: str,
                     depth: int) -> str | None:
        """The type of output column `name` of a subquery or CTE, when every
        branch gives it straight from a table column of one type."""
        branches = scopes.selects(query)
        if not branches:
            return None
        if isinstance(alias, exp.TableAlias) and alias.columns:
            names = [fold(c.name) for c in alias.columns]
        else:
            names = [fold(p.alias_or_name) for p in branches[0].expressions]
        if names.count(name) != 1:
            return None
        index = names.index(name)
        types = set()
        for select in branches:
            if index >= len(select.expressions) or any(
                    p.is_star for p in select.expressions):
                return None
            p = select.expressions[index]
            inner = p.this if isinstance(p, exp.Alias) else p
            types.add(self.type_of(inner, depth) if isinstance(inner, exp.Column) else None)
        return types.pop() if len(types) == 1 else None

    def insert_target(self, insert: exp.Insert, position: int) -> tuple[str, str] | None:
        """(column, type) of an INSERT's VALUES position."""
        target = insert.this
        names: list[str] | None = None
        if isinstance(target, exp.Schema):
            names = [fold(c.name) for c in target.expressions]
            target = target.this
        cols = self.table(target)
        if not cols:
            return None
        order = names if names is not None else list(cols)
        column = order[position] if position < len(order) else None
        return (column, cols[column]) if column in cols else None

    def update_target(self, update: exp.Update, column: exp.Column) -> tuple[str, str] | None:
        """(column, type) of an UPDATE's `SET column = …`."""
        cols = self.table(update.this)
        name = fold(column.name)
        return (name, cols[name]) if cols and name in cols else None


def misplaced(tree: exp.Expression, mark: str) -> list[tuple[int, int | None]]:
    """(n, offset in the marked text if known) of every `$n` (written `mark`n)
    that stands where a name must: a table, a column's qualifier or name
    after one, an alias, a column list, a function, `SET $1 = …`. As a
    literal there the value became the name (`FROM r6.$1` read table r6.<value>);
    PostgreSQL refuses it as a syntax error.

    The places where a name stands are listed (`_names_something`); sqlglot
    also gives a value as a name in places of its own (FETCH FIRST $1 ROWS,
    a PIVOT's output columns made from its IN values), and a list of value
    places refused those valid queries."""
    out: list[tuple[int, int | None]] = []
    for node in tree.walk():
        if isinstance(node, exp.Identifier):
            text = node.name
        elif isinstance(node, exp.Anonymous) and isinstance(node.this, str):
            text = node.this  # `$1(…)`: a function's name
        else:
            continue
        if not text.lower().startswith(mark) or not text[len(mark):].isdigit():
            continue
        if isinstance(node, exp.Identifier) and not _names_something(node):
            continue
        start = node.meta.get("start")
        out.append((int(text[len(mark):]), start if isinstance(start, int) else None))
    return out


# Where an identifier always names something: a table or its namespace, an
# alias (of a table, CTE, column, PIVOT value), a column list, USING (…), a
# window, a struct field (`a := …`), a lambda's parameter, a column defined,
# a field after a dot, UNPIVOT's value and name columns.
_NAMING = (exp.Table, exp.TableAlias, exp.Alias, exp.PivotAlias, exp.Join, exp.Window,
           exp.PropertyEQ, exp.Lambda, exp.ColumnDef, exp.Schema, exp.Dot, exp.CTE, exp.Pivot)


def _names_something(node: exp.Identifier) -> bool:
    """Does identifier `node` stand where a name must (not a value)?"""
    parent = node.parent
    if isinstance(parent, exp.Pivot) and node.arg_key == "columns":
        return False  # a PIVOT's output names, made by sqlglot from its IN values
    if isinstance(parent, _NAMING):
        return True
    if isinstance(parent, exp.In) and isinstance(parent.parent, exp.Pivot):
        return True  # `IN $1`: an ENUM type's name (the values are columns)
    if not isinstance(parent, exp.Column):
        return False  # FETCH FIRST $1 ROWS, …: a value sqlglot reads as a name
    if node.arg_key != "this" or parent.table:
        return True  # `$1.k`, `t.$1`
    return _set_column(parent) or _names_a_column(parent)


def _names_a_column(col: exp.Column) -> bool:
    """Is `col` a column's name, not a value: in `* EXCLUDE (…)`, `* RENAME
    (… AS k)`, `FOR col IN` of a PIVOT, the columns an UNPIVOT
    reads (`IN (col, …)`)?"""
    node: exp.Expression = col
    while isinstance(node.parent, exp.Paren):
        node = node.parent
    parent = node.parent
    if isinstance(parent, exp.Alias) and isinstance(parent.parent, exp.Star):
        return parent.arg_key != "replace"  # REPLACE (<a value> AS k)
    if isinstance(parent, exp.Star):
        return True
    if isinstance(parent, exp.In) and isinstance(parent.parent, exp.Pivot):
        return node.arg_key == "this" or bool(parent.parent.args.get("unpivot"))
    return False


def _set_column(col: exp.Column) -> bool:
    """Is `col` the column an UPDATE's SET writes (`SET col = …`)?"""
    eq = col.parent
    return isinstance(eq, exp.EQ) and col.arg_key == "this" and isinstance(eq.parent, exp.Update) \
        and eq.arg_key == "expressions"
