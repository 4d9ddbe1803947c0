"""Which columns of a query's answer are JSON: DuckDB reads a JSON column as
VARCHAR and drops Arrow's field metadata, so the answer's JSON columns are
found from the query itself, by what each one is: a JSON column of a table
(through aliases, subqueries and CTEs, `*` expanded), or a CAST to JSON. By
name they were not: `SELECT s AS j` (TEXT named like a JSON column) came out
as JSON, `SELECT j AS x` as text.

`of` answers by position, or None when the query's columns cannot be told
(a `* EXCLUDE`, a join USING, a table function): `mark` then falls back to
the names of the tables' JSON columns."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlglot import exp

from .sandbox import fold
from .scopes import cte_of, find, items, merges_columns, star_sources

CAIRN_TYPE = b"cairn.type"
# On a column marked JSON by its name alone (`of` could not tell the answer's
# columns): the PostgreSQL protocol announces it as text, not json, as any
# text may be in it (`SELECT s AS j ... JOIN ... USING`: psycopg's json loader
# failed on 'hello' and the client had no rows).
BY_NAME = b"cairn.json_by_name"
Outputs = list[tuple[str, bool]]  # a query's or table's columns: (folded name, is JSON)


class _Unknown(Exception):
    """The query's columns cannot be told."""


def of(tree: exp.Expression, tables: dict[int, Outputs], ctes: set[int]) -> list[bool] | None:
    """Per column of the answer of `tree` (rewritten: `tables` gives the
    columns of each table node by id), whether it is JSON; None if unknown."""
    try:
        return [is_json for _, is_json in _Lineage(tables, ctes).query(tree)]
    except (_Unknown, RecursionError):
        return None


class _Lineage:
    def __init__(self, tables: dict[int, Outputs], ctes: set[int]) -> None:
        self.tables, self.ctes = tables, ctes
        self.busy: set[int] = set()  # CTEs being read (a recursive one: unknown)

    def query(self, node: Any) -> Outputs:
        while isinstance(node, exp.Subquery):
            node = node.this
        if isinstance(node, exp.SetOperation):
            left, right = self.query(node.left), self.query(node.right)
            if len(left) != len(right):
                raise _Unknown
            return [(n, a and b) for (n, a), (_, b) in zip(left, right, strict=True)]
        if not isinstance(node, exp.Select):
            raise _Unknown
        if merges_columns(node):
            raise _Unknown  # a USING or NATURAL join's `*` merges columns
        out: Outputs = []
        for p in node.expressions:
            sources = star_sources(node, p, None, self.ctes)
            if sources is None:
                inner = p.this if isinstance(p, exp.Alias) else p
                out.append((fold(p.alias_or_name), self.value(node, inner)))
                continue
            for source in sources:
                if source is None:
                    raise _Unknown  # EXCLUDE, REPLACE, RENAME; a qualifier of no one item
                out += self.item(source)
        return out

    def value(self, select: exp.Select, node: Any) -> bool:
        """Whether one SELECT item's value is JSON."""
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
            return bool(node.to.this == exp.DataType.Type.JSON)
        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            return False
        name = fold(node.name)
        if node.table:
            found = find(node, None, self.ctes)
            if len(found) != 1:
                return False  # DuckDB will say what is wrong
            sources = found
        else:
            sources = [i for i in items(select) if any(n == name for n, _ in self.item(i))]
            if len(sources) != 1:
                return False  # an outer query's column, an alias, or ambiguous
        return any(n == name and j for n, j in self.item(sources[0]))

    def item(self, item: exp.Expression) -> Outputs:
        """A FROM item's columns."""
        if id(item) in self.tables:
            out = self.tables[id(item)]
        elif isinstance(item, exp.Table) and id(item) in self.ctes:
            out = self.cte(item)
        elif isinstance(item, exp.Subquery):
            out = self.query(item.this)
        else:
            raise _Unknown  # a table function, VALUES, a LATERAL
        alias = item.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            names = [fold(c.name) for c in alias.columns]
            out = [(names[i] if i < len(names) else n, j) for i, (n, j) in enumerate(out)]
        return out

    def cte(self, table: exp.Table) -> Outputs:
        cte = cte_of(table)
        if cte is None or id(cte) in self.busy:
            raise _Unknown
        self.busy.add(id(cte))
        try:
            out = self.query(cte.this)
        finally:
            self.busy.discard(id(cte))
        cols = cte.args["alias"].columns if cte.args.get("alias") else []
        names = [fold(c.name) for c in cols]
        return [(names[i] if i < len(names) else n, j) for i, (n, j) in enumerate(out)]


def mark(table: pa.Table, json_names: set[str], json_columns: list[bool] | None = None,
         guessed: bool = False) -> pa.Table:
    """DuckDB drops Arrow field metadata: put `cairn.type = JSON` back on the
    answer's JSON columns, by position (`json_columns`, from `of`) when known
    for every column, else on string columns named like a JSON column of the
    tables the query read: `guessed` when `of` could not tell (BY_NAME goes
    with the mark then), not where the names tell (a fast-path SELECT of
    plain columns, an answer read off one table)."""
    known = json_columns is not None and len(json_columns) == table.num_columns
    if not known and not json_names:
        return table
    guessed = not known and (guessed or json_columns is not None)
    fields = []
    changed = False
    for i, f in enumerate(table.schema):
        wanted = json_columns[i] if known and json_columns is not None else f.name in json_names
        if wanted and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            f = f.with_metadata({CAIRN_TYPE: b"JSON", BY_NAME: b"true"} if guessed
                                else {CAIRN_TYPE: b"JSON"})
            changed = True
        fields.append(f)
    # Same types, new field metadata: rewrap the columns (a cast would copy-check them).
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields)) if changed else table
