"""Which table references of a query show their soft-deleted rows (docs/sql.md):
those whose `_deleted` a WHERE names, bound as DuckDB binds names
(storage/scopes.py finds the FROM items a qualified column names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from .sandbox import fold
from .scopes import (
    Columns,
    alias_columns,
    cte_of,
    duckdb_names,
    enclosing,
    find,
    items,
    renamed,
    selects,
    star_sources,
    table_columns,
)
from .types import DELETED


def _in_where(col: exp.Column) -> bool:
    """Is `col` part of a WHERE of its own query level (not of a subquery's
    SELECT list inside one, nor an aggregate's `FILTER (WHERE …)`, which
    sqlglot also writes as a Where: it turned deleted rows on for the whole
    query, an INSERT … SELECT copying them as live)?"""
    node = col.parent
    while node is not None and not isinstance(node, exp.Query | exp.Subquery):
        if isinstance(node, exp.Where):
            return not isinstance(node.parent, exp.Filter)
        node = node.parent
    return False


def _cte_query(table: exp.Table) -> exp.Expression | None:
    cte = cte_of(table)
    return None if cte is None else cte.this


def _unpivoted(table: exp.Table) -> list[str]:
    """The columns an UNPIVOT of the table makes (its value and name columns:
    DuckDB names one `_deleted_1` if the table has a `_deleted`)."""
    out = []
    for p in table.args.get("pivots") or []:
        if p.args.get("unpivot"):
            out += [fold(e.name) for e in p.expressions]
            out += [fold(f.this.name) for f in p.args.get("fields") or [] if isinstance(f, exp.In)]
    return out


class DeletedRule:
    """The per-table rule of `_deleted` (docs/sql.md): a table reference shows
    its soft-deleted rows only where a WHERE names ITS `_deleted` (`t._deleted`,
    or a bare `_deleted` the nearest query level with such a column reads);
    through a subquery or CTE that passes the column on, the tables it reads
    it from. Names go through alias column lists by position, as DuckDB binds
    them: in `FROM t AS x(k, _deleted, u, d)` the `_deleted` is t's second
    column and `d` is t's `_deleted` (its columns are the view's: the
    table's own, `_updated` and `_deleted` last)."""

    def __init__(self, ctes: set[int], default_ns: str | None, columns: Columns) -> None:
        self.ctes, self.default_ns, self.columns = ctes, default_ns, columns
        self.shown: set[int] = set()
        self.seen: set[tuple[int, str]] = set()
        self.busy: set[int] = set()  # CTEs being read (a recursive one: unknown)
        self.known: dict[int, list[str] | None] = {}  # a table node's columns

    def tables(self, tree: exp.Expression) -> set[int]:
        """The ids of the table nodes that show their deleted rows."""
        # Without an alias column list only a `_deleted` can name a `_deleted`
        # (or a `_deleted_1`: a subquery's second one, as DuckDB names it).
        renames = any(a.args.get("columns") for a in tree.find_all(exp.TableAlias))
        for col in tree.find_all(exp.Column):
            if not isinstance(col.this, exp.Identifier) or not _in_where(col):
                continue
            if renames or fold(col.name).startswith(DELETED):
                self._bind(col)
        return self.shown

    def _bind(self, col: exp.Column) -> None:
        """Mark what the column reads, if it reads a table's `_deleted`."""
        name = fold(col.name)
        if col.table:
            for item in find(col, self.default_ns, self.ctes):
                self._mark(item, name)
            return
        for select in enclosing(col):
            found = [i for i in items(select) if self._has(i, name)]
            if found:
                for item in found:
                    self._mark(item, name)
                return

    def _query_of(self, item: exp.Expression) -> exp.Expression | None:
        if isinstance(item, exp.Table):
            return _cte_query(item) if id(item) in self.ctes else None
        query: exp.Expression | None = item.this if isinstance(item, exp.Subquery | exp.Lateral) \
            else None
        return query

    def _names(self, item: exp.Expression) -> list[str] | None:
        """The columns a FROM item has, in order, by the names it gives
        them; None if that cannot be told here."""
        if isinstance(item, exp.Table) and id(item) not in self.ctes:
            if not isinstance(item.this, exp.Identifier):
                return None  # a table function
            names = self._columns(item)
            out = renamed(None if names is None else [fold(n) for n in names], item)
            return None if out is None else out + _unpivoted(item)
        if isinstance(item, exp.Table):
            cte = cte_of(item)
            if cte is None or id(cte) in self.busy:
                return None
            self.busy.add(id(cte))
            try:
                return renamed(renamed(self._outputs(cte.this), cte), item)
            finally:
                self.busy.discard(id(cte))
        return renamed(self._outputs(self._query_of(item)), item)

    def _columns(self, table: exp.Table) -> list[str] | None:
        if id(table) not in self.known:
            self.known[id(table)] = self.columns(table)
        return self.known[id(table)]

    def _outputs(self, query: exp.Expression | None) -> list[str] | None:
        """A query's column names (its first SELECT's), `*` expanded."""
        branches = selects(query)
        if not branches:
            return None
        out: list[str] = []
        for p in branches[0].expressions:
            sources = star_sources(branches[0], p, self.default_ns, self.ctes)
            if sources is None:
                out.append(fold(p.alias_or_name))
                continue
            for source in sources:
                names = self._names(source) if source is not None else None
                if names is None:
                    return None
                out += names
        return duckdb_names(out)

    def _has(self, item: exp.Expression, name: str) -> bool:
        """May a bare column `name` read this item's column?"""
        names = self._names(item)
        if names is not None:
            return name in names
        if name in alias_columns(item):
            return True
        if name != DELETED:
            return False
        if isinstance(item, exp.Table) and id(item) not in self.ctes:
            return isinstance(item.this, exp.Identifier)  # unknown: the rewrite tells
        return self._passes_deleted(self._query_of(item))

    def _passes_deleted(self, query: exp.Expression | None) -> bool:
        """Does a query's answer have a `_deleted` taken from a table (a star,
        or a plain column of that name)?"""
        for select in selects(query):
            for p in select.expressions:
                inner = p.this if isinstance(p, exp.Alias) else p
                if isinstance(p, exp.Star) or isinstance(inner, exp.Column) and (
                        isinstance(inner.this, exp.Star) or fold(inner.name) == DELETED):
                    return True
        return False

    def _mark(self, item: exp.Expression, name: str) -> None:
        """The item's column `name` is read by a WHERE: mark the table whose
        `_deleted` it is, through subqueries and CTEs."""
        if (id(item), name) in self.seen:
            return
        self.seen.add((id(item), name))
        names = self._names(item)
        if isinstance(item, exp.Table) and id(item) not in self.ctes:
            real = self._columns(item) if isinstance(item.this, exp.Identifier) else []
            if real is None:  # an unknown table: the rewrite tells
                if name == DELETED:
                    self.shown.add(id(item))
            elif names is not None and name in names:
                i = names.index(name)  # (past the table's: an UNPIVOT's own)
                if i < len(real) and fold(real[i]) == DELETED:
                    self.shown.add(id(item))
            return
        query = self._query_of(item)
        cols = alias_columns(item)
        at = names.index(name) if names is not None and name in names else \
            cols.index(name) if name in cols else None
        if at is not None:
            for select in selects(query):
                self._mark_output(select, at)
            return
        if name != DELETED or not self._passes_deleted(query):
            return  # a `_deleted` the subquery computed: no table's
        for select in selects(query):  # columns unknown: by name
            for inner in items(select):
                if self._has(inner, DELETED):
                    self._mark(inner, DELETED)

    def _mark_output(self, select: exp.Select, at: int) -> None:
        """Mark what a SELECT's output column `at` (by position) passes on."""
        pos = 0
        for p in select.expressions:
            sources = star_sources(select, p, self.default_ns, self.ctes)
            if sources is None:
                if pos == at:
                    inner = p.this if isinstance(p, exp.Alias) else p
                    if isinstance(inner, exp.Column) and isinstance(inner.this, exp.Identifier):
                        self._bind(inner)
                    return
                pos += 1
                continue
            for source in sources:
                names = self._names(source) if source is not None else None
                if source is None or names is None:
                    return  # where the columns are cannot be told
                if at < pos + len(names):
                    self._mark(source, names[at - pos])
                    return
                pos += len(names)


# Set in a table node's meta: the reference never shows deleted rows (the
# table an UPDATE or DELETE changes: a deleted row is not there to change).
LIVE_ONLY = "cairn_live_only"


def deleted_shown(expression: exp.Expression, ctes: set[int], default_ns: str | None,
                   state_of: Callable[[str, str], Any], show_deleted: bool | None,
                   deleted: bool) -> bool | set[int]:
    """Which table references show their deleted rows: all or none (a bool),
    or the ids of those a WHERE names the `_deleted` of (`DeletedRule`)."""
    if show_deleted is not None:
        return show_deleted
    if not deleted:
        return False
    return DeletedRule(ctes, default_ns, table_columns(default_ns, state_of)).tables(expression)


def shows(node: exp.Table, shown: bool | set[int]) -> bool:
    """Does this table reference show its deleted rows?"""
    return (shown if isinstance(shown, bool) else id(node) in shown) \
        and not node.meta.get(LIVE_ONLY)
