"""The table column a `$n` is compared with or written into, bound as SQL
binds names, by the binder of the storage rewrite (storage/scopes.py): the
nearest query level first, then the queries around it; a qualified name by
its alias, or by namespace and table; a table by its namespace and name.

Tables were looked up by bare name (of `r1a.s` and `r1b.s`, the later won)
and an unqualified column took the first table with a column of its name,
in any subquery: `DELETE FROM r1a.s WHERE v = $1 AND k IN (SELECT k FROM
r1b.s)` typed `$1` from r1b.s's BIGINT `v`, so '7' also matched '007'.
A subquery's or CTE's `*` is spread into its tables' columns (a Cairn
table's as its view shows them, `_updated` and `_deleted` too). Where the
column is not one that can be told (an unknown table, a table function, two
columns of different types), there is no column: the parameter stays text,
as an HTTP literal is."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from storage import scopes
from storage.sandbox import cte_references, fold
from storage.schema import SYSTEM_COLUMNS

Lookup = Callable[[str | None, str], "dict[str, str] | None"]  # (ns, table) -> column -> type

MAX_DEPTH = 16  # subqueries and CTEs followed to the table a column comes from


class Binder:
    """Columns of one statement's tree, bound to their tables."""

    def __init__(self, tree: exp.Expression, lookup: Lookup, default_ns: str | None) -> None:
        self.lookup = lookup
        self.default_ns = fold(default_ns) if default_ns else None
        self.ctes = cte_references(tree)
        self.known: dict[tuple[str | None, str], dict[str, str] | None] = {}
        self.seen: dict[int, list[tuple[str, str | None]] | None] = {}  # outputs(), by item
        self.busy: set[int] = set()
        self.enclosing: dict[int, list[exp.Expression]] = {}  # scopes.enclosing's memo

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
        if isinstance(col.this, exp.Star) or depth > MAX_DEPTH:
            return None
        name = fold(col.name)
        alias = None if col.table else self._alias(col, name, depth)
        if alias is not None:
            return self.value_type(alias.this)
        found = self._bind(col, name, depth)
        if not found or col.table and len(found) > 1:
            return None  # a qualifier naming two tables: DuckDB's "Ambiguous reference"
        # An unqualified name in two tables is one column only in a join's
        # USING (or NATURAL): then of one type.
        types = set()
        for item in found:
            outputs = self.outputs(item, depth) or []
            of_name = [typ for n, typ in outputs if n == name]
            types.add(of_name[0] if len(of_name) == 1 else None)
        return types.pop() if len(types) == 1 else None

    def value_type(self, node: Any) -> str | None:
        """The Cairn type of what `node` gives, where it can be told: a table
        column, an aggregate or function of one (`sum(k)`, `coalesce(n, 0)`),
        as PostgreSQL types them; else None."""
        node = node.unnest()
        if isinstance(node, exp.Column):
            return self.type_of(node)
        if isinstance(node, exp.Count):
            return "BIGINT"
        if isinstance(node, exp.Sum | exp.Avg):
            inner = self.value_type(node.this)
            base = inner.split("(", 1)[0].strip().upper() if inner else None
            if base in ("DOUBLE", "FLOAT"):
                return "DOUBLE"
            if isinstance(node, exp.Sum) and base in ("TINYINT", "SMALLINT", "INT"):
                return "BIGINT"
            return "DECIMAL" if base in _NUMBERS else None
        if isinstance(node, _SAME_TYPE):
            args = [a for a in node.iter_expressions() if not isinstance(a.unnest(), exp.Literal)]
            return one_type({self.value_type(a) for a in args})
        return None

    def _alias(self, col: exp.Column, name: str, depth: int) -> exp.Alias | None:
        """The item of its own SELECT an unqualified column names by its alias,
        where DuckDB binds it so: in HAVING (outside an aggregate) before a
        table column unless GROUP BY names that column; in WHERE, QUALIFY,
        GROUP BY and ORDER BY only when no FROM item of that SELECT has the
        column. `SELECT v AS n … GROUP BY v HAVING n = $1` typed $1 by the
        table's BIGINT n, where DuckDB compares the TEXT v: '007' matched '7'."""
        node: Any = col
        in_aggregate = False
        while not isinstance(node.parent, exp.Select):
            if node.parent is None or isinstance(node.parent, exp.Query):
                return None
            node = node.parent
            in_aggregate = in_aggregate or isinstance(node, exp.AggFunc)
        select, clause = node.parent, node.arg_key
        if in_aggregate or clause not in ("having", "where", "qualify", "group", "order"):
            return None
        items = [p for p in select.expressions
                 if isinstance(p, exp.Alias) and fold(p.alias) == name]
        if len(items) != 1:
            return None
        if clause == "having":
            group = select.args.get("group")
            grouped = group.expressions if isinstance(group, exp.Group) else []
            named = any(isinstance(g, exp.Column) and fold(g.name) == name for g in grouped)
            return None if named else items[0]
        for item in scopes.items(select):
            outputs = self.outputs(item, depth)
            if outputs is None or any(n == name for n, _ in outputs):
                return None  # the table's column (or it cannot be told)
        return items[0]

    def _bind(self, col: exp.Column, name: str, depth: int) -> list[exp.Expression] | None:
        """The FROM items `col` reads (scopes.bind), a `*` in a subquery or
        CTE spread into the columns it gives."""
        if col.table:
            return scopes.find(col, self.default_ns, self.ctes, self._names)
        for select in scopes.enclosing(col, self.enclosing):
            found = []
            for item in scopes.items(select):
                outputs = self.outputs(item, depth)
                if outputs is None:
                    return None  # a table function, an unknown table: cannot be told
                if any(n == name for n, _ in outputs):
                    found.append(item)
            if found:
                return found
        return []

    def outputs(self, item: exp.Expression, depth: int = 0,
                ) -> list[tuple[str, str | None]] | None:
        """The columns FROM item `item` gives, in order, by the names it
        gives them, each with its Cairn type (None: not one table column's);
        None if they cannot be told. A Cairn table's are its view's, system
        columns too (`_updated`, `_deleted`), as `SELECT *` shows them."""
        key = id(item)
        if key in self.busy or depth > MAX_DEPTH:
            return None  # a recursive CTE read in its own definition
        if key not in self.seen:
            self.busy.add(key)
            try:
                self.seen[key] = self._outputs(item, depth)
            finally:
                self.busy.discard(key)
        return self.seen[key]

    def _outputs(self, item: exp.Expression, depth: int) -> list[tuple[str, str | None]] | None:
        cols = self.table(item)
        found: list[tuple[str, str | None]] | None
        if cols is not None:
            if item.args.get("pivots"):
                return None  # a PIVOT/UNPIVOT's columns are not the table's
            found = list(cols.items())
        elif isinstance(item, exp.Subquery):
            found = self._query_outputs(item.this, depth + 1)
        elif isinstance(item, exp.Table) and id(item) in self.ctes:
            cte = scopes.cte_of(item)
            if cte is None:
                return None
            found = self.outputs(cte, depth + 1)  # renamed by WITH c(a, b) AS (...)
        elif isinstance(item, exp.CTE):
            found = self._query_outputs(item.this, depth)
        else:
            return None  # a table function, VALUES, LATERAL: not told here
        return _renamed(found, item)

    def _query_outputs(self, query: exp.Expression, depth: int,
                       ) -> list[tuple[str, str | None]] | None:
        """A query's columns: its first branch's names; a type where every
        branch gives that column straight from a table column of one type."""
        branches = scopes.selects(query)
        if not branches:
            return None
        columns = [self._select_outputs(select, depth) for select in branches]
        first = columns[0]
        if first is None:
            return None
        out: list[tuple[str, str | None]] = []
        for i, name in enumerate(scopes.duckdb_names([n for n, _ in first])):
            types = {c[i][1] if c is not None and i < len(c) else None for c in columns}
            out.append((name, types.pop() if len(types) == 1 else None))
        return out

    def _select_outputs(self, select: exp.Select, depth: int,
                        ) -> list[tuple[str, str | None]] | None:
        out: list[tuple[str, str | None]] = []
        for p in select.expressions:
            sources = scopes.star_sources(select, p, self.default_ns, self.ctes)
            if sources is None:
                inner = p.this if isinstance(p, exp.Alias) else p
                typ = self.type_of(inner, depth) if isinstance(inner, exp.Column) else None
                out.append((fold(p.alias_or_name), typ))
                continue
            for source in sources:
                spread = self.outputs(source, depth) if source is not None else None
                if spread is None:
                    return None
                out += spread
        return out

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
        order = names if names is not None else [c for c in cols if c not in SYSTEM_COLUMNS]
        column = order[position] if position < len(order) else None
        return (column, cols[column]) if column in cols else None

    def update_target(self, update: exp.Update, column: exp.Column) -> tuple[str, str] | None:
        """(column, type) of an UPDATE's `SET column = …`."""
        cols = self.table(update.this)
        name = fold(column.name)
        return (name, cols[name]) if cols and name in cols and name not in SYSTEM_COLUMNS \
            else None


def one_type(types: set[str | None]) -> str | None:
    """The one type of `types`, or None; DECIMALs of several precisions are
    the DECIMAL DuckDB makes of them (DECIMAL(10,2) and DECIMAL(9,9): the
    most whole digits and the most decimals, DECIMAL(17,9)), past 38 digits a
    DECIMAL of no known precision. Told apart since a DECIMAL column's type
    carries them, `$1 IN (c, b)` and `coalesce(c, b) = $1` were typed TEXT,
    not NUMERIC."""
    if len(types) == 1:
        return types.pop()
    if not types or None in types:
        return None
    found = [_DECIMAL_OF.fullmatch(t.replace(" ", "").upper()) for t in types if t]
    if not all(found):
        return None
    sizes = [(int(m[1] or 18), int(m[2] or 3)) for m in found if m]  # bare: DuckDB's (18,3)
    whole, scale = max(p - s for p, s in sizes), max(s for _, s in sizes)
    return f"DECIMAL({whole + scale},{scale})" if whole + scale <= 38 else "DECIMAL(?)"


_DECIMAL_OF = re.compile(r"DECIMAL(?:\(([0-9]{1,2}),([0-9]{1,2})\))?")


_NUMBERS = ("TINYINT", "SMALLINT", "INT", "BIGINT", "UBIGINT", "DECIMAL")
# Functions whose value is of their (non-literal) arguments' one type.
_SAME_TYPE = (exp.Min, exp.Max, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Abs,
              exp.AnyValue, exp.First, exp.Last, exp.IgnoreNulls)


def _renamed(columns: list[tuple[str, str | None]] | None, item: exp.Expression,
             ) -> list[tuple[str, str | None]] | None:
    """`columns` as an alias's column list renames them: the first ones."""
    names = scopes.renamed(None if columns is None else [n for n, _ in columns], item)
    return None if names is None or columns is None else [
        (n, typ) for n, (_, typ) in zip(names, columns, strict=True)]


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
        elif isinstance(node, exp.Var) and isinstance(node.parent, exp.Collate):
            text = node.name  # `COLLATE $1`: a collation's name
        elif isinstance(node, exp.DataType) and isinstance(node.args.get("kind"), str):
            text = node.args["kind"]  # `::$1`: a type's name
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
