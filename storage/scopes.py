"""Which FROM item a qualified column of a user's query names, as DuckDB binds
it on real schemas: the nearest enclosing SELECT (itself first, then the
queries around it) that has an item of that name. An item without an alias
is named by its table name and by `ns.table`; one with an alias by the alias
alone; names compare as DuckDB folds them (`sandbox.fold`).

storage/query.py replaces each Cairn table by a subquery under one alias. Two
tables of one name in different namespaces (`r1a.t`, `r1b.t`), or a table and
a subquery, CTE or alias of its name, need different aliases then, and every
column that named one of them must name its new alias: a correlated
`WHERE r1b.t.k = r1a.t.k` read as `t.k = t.k` bound both sides to the inner
table, and an UPDATE or DELETE matched every row.

`bind` also places an unqualified column (the nearest level with an item
that has a column of its name): the PostgreSQL protocol types a `$n` by the
column it is compared with so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from catalog.errors import CairnError, InvalidArgument

from .sandbox import fold


def items(select: exp.Expression) -> list[exp.Expression]:
    """The SELECT's FROM items, joined ones too, parenthesized joins opened;
    an UPDATE's or DELETE's table first, then its FROM or USING."""
    out: list[exp.Expression] = []
    frm = select.args.get("from_") or select.args.get("from")
    todo = [select.this] if isinstance(select, exp.Update | exp.Delete) else []
    todo += [frm.this] if isinstance(frm, exp.From) else []
    todo += [j.this for j in select.args.get("joins") or []]
    if isinstance(select, exp.Delete):
        todo += [u for u in select.args.get("using") or [] if isinstance(u, exp.Expression)]
    while todo:
        node = todo.pop(0)
        if isinstance(node, exp.Subquery) and not node.alias and isinstance(node.this, exp.Table):
            todo.insert(0, node.this)  # `FROM (a JOIN b ON ...)`: a and b
            continue
        out.append(node)
        if isinstance(node, exp.Table):
            todo[0:0] = [j.this for j in node.args.get("joins") or []]
    return out


def merges_columns(select: exp.Expression) -> bool:
    """Does a join of the SELECT's FROM merge columns (USING, NATURAL), so that
    its `*` is not each item's columns in turn? Joins written after FROM and
    those sqlglot hangs on a table (`FROM a JOIN b USING (k) SELECT *`) alike."""
    joins = list(select.args.get("joins") or [])
    joins += [j for item in items(select) if isinstance(item, exp.Table)
              for j in item.args.get("joins") or []]
    return any(j.args.get("using") or str(j.args.get("method") or "").upper() == "NATURAL"
               for j in joins)


def star_sources(select: exp.Expression, p: exp.Expression, default_ns: str | None,
                 ctes: set[int]) -> list[exp.Expression | None] | None:
    """The FROM items a SELECT item `*` or `t.*` spreads, in order; [None]
    when that cannot be told (a USING or NATURAL join merges columns; EXCLUDE,
    REPLACE or RENAME; a qualifier naming no one item); None if `p` is no star."""
    inner = p.this if isinstance(p, exp.Alias) else p
    if not isinstance(p, exp.Star) and not (
            isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star)):
        return None
    if merges_columns(select):
        return [None]
    if isinstance(p, exp.Star):
        return [None] if any(p.args.values()) else list(items(select))
    if not isinstance(inner, exp.Column):
        return [None]
    found: list[exp.Expression | None] = list(find(inner, default_ns, ctes))
    return [None] if any(inner.this.args.values()) or len(found) != 1 else found


def duckdb_names(names: list[str]) -> list[str]:
    """A query's column names as DuckDB gives repeated ones: k, k_1, k_2 (the
    first free suffix; `a, a, a_1, a` -> `a, a_1, a_1_1, a_2`). Also an
    answer's names over HTTP (server/result.py), where a row is an object
    keyed by name and `SELECT 1 AS a, 2 AS a` lost a value."""
    taken: set[str] = set()
    out: list[str] = []
    for base in names:
        name, n = base, 0
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out.append(name)
    return out


def names(item: exp.Expression, default_ns: str | None, ctes: set[int]) -> set[str]:
    """The names a column's qualifier may give `item` by."""
    if item.alias:
        return {fold(item.alias)}
    if not isinstance(item, exp.Table):
        return set()
    name = fold(item.name)
    if id(item) in ctes or not isinstance(item.this, exp.Identifier):
        return {name}
    ns = fold(item.db) if item.db else default_ns
    return {name, f"{ns}.{name}"} if ns else {name}


def qualifier(col: exp.Column) -> str | None:
    """`t` of `t.c`, `ns.t` of `ns.t.c` (folded); None if unqualified."""
    if not col.table:
        return None
    return f"{fold(col.db)}.{fold(col.table)}" if col.db else fold(col.table)


def enclosing(node: exp.Expression,
              memo: dict[int, list[exp.Expression]] | None = None) -> list[exp.Expression]:
    """The SELECTs (and an UPDATE or DELETE) whose FROM items `node` may name,
    nearest first: a CTE's query does not see the FROM of the query its WITH
    heads. `memo` (by node id, for one tree) keeps each node's answer, so the
    columns of a long chain (`k = $1 OR k = $2 OR …`, left-nested n deep) are
    not each walked up the whole chain: n walks of n, seconds at a few
    thousand."""
    path: list[Any] = []
    top: Any = node
    while top.parent is not None and (memo is None or id(top) not in memo):
        path.append(top)
        top = top.parent
    out: list[exp.Expression] = memo.get(id(top), []) if memo is not None else []
    for child in reversed(path):
        parent = child.parent
        if isinstance(parent, exp.Select | exp.Update | exp.Delete) \
                and child is not parent.args.get("with_"):
            out = [parent, *out]
        if memo is not None:
            memo[id(child)] = out
    return out


def find(col: exp.Column, default_ns: str | None, ctes: set[int],
         columns: Columns | None = None) -> list[exp.Expression]:
    """The FROM items of the nearest SELECT that has one `col`'s qualifier
    names (more than one: DuckDB's "Ambiguous reference"), or []. Given
    `columns` (a Cairn table's column names), as DuckDB binds: the nearest
    such item that has the column, an item known not to have it passed over
    for the queries around it (`t.v` under `(SELECT 1 AS k) t` inside a query
    of a table `t` with a column `v` is that table's); none having it, the
    nearest, so DuckDB says what is wrong."""
    key = qualifier(col)
    if key is None:
        return []
    name = None if isinstance(col.this, exp.Star) else fold(col.name)
    nearest: list[exp.Expression] = []
    for select in enclosing(col):
        found = [i for i in items(select) if key in names(i, default_ns, ctes)]
        if found and (columns is None or name is None):
            return found
        if found:
            nearest = nearest or found
            having = [i for i in found if has_column(i, name, ctes, columns) is not False]
            if having:
                return having
    return nearest


def bind(col: exp.Column, default_ns: str | None, ctes: set[int],
         columns: Columns) -> list[exp.Expression] | None:
    """The FROM items column `col` reads, as DuckDB binds it: a qualified
    one the items `find` gives; an unqualified one the items of the nearest
    query level (itself first, then the queries around it) that have a
    column of its name: more than one is DuckDB's "Ambiguous reference", none
    at any level []. None when that cannot be told here: an item whose
    columns are unknown (`has_column`) stands at a level it is looked for in."""
    if col.table:
        return find(col, default_ns, ctes, columns)
    name = fold(col.name)
    for select in enclosing(col):
        found = []
        for item in items(select):
            has = has_column(item, name, ctes, columns)
            if has is None:
                return None
            if has:
                found.append(item)
        if found:
            return found
    return []


def has_column(item: exp.Expression, name: str | None, ctes: set[int],
               columns: Columns | None) -> bool | None:
    """Whether FROM item `item` has a column `name`: None when that cannot
    be told here (a `*`, a table function, a name Cairn keeps hidden). An
    alias's column list renames the first columns only (`t AS x(kk)` still
    has t's second column)."""
    if name is None or columns is None:
        return None
    if name in alias_columns(item):
        return True
    if isinstance(item, exp.Subquery):
        names = renamed(_output_names(item.this), item)
    elif isinstance(item, exp.Table) and id(item) in ctes:
        cte = cte_of(item)
        if cte is None:
            return None
        names = renamed(renamed(_output_names(cte.this), cte), item)  # WITH t(a, b) AS
        if names is None and name in alias_columns(cte)[len(alias_columns(item)):]:
            return True
    elif isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
        if name.startswith("_"):
            return None  # _seq, _updated, _deleted, _id: Cairn's own, hidden or not
        known = columns(item)
        names = renamed(None if known is None else [fold(c) for c in known], item)
    else:
        return None
    return None if names is None else name in names


def alias_columns(item: exp.Expression) -> list[str]:
    """The names an alias's column list gives an item's first columns."""
    alias = item.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.args.get("columns"):
        return [fold(c.name) for c in alias.columns]
    return []


def renamed(names: list[str] | None, item: exp.Expression) -> list[str] | None:
    """`names` (an item's columns, in order) as its alias's column list
    renames them: the first ones, by position, as DuckDB does."""
    cols = alias_columns(item)
    if names is None or not cols:
        return names
    return [cols[i] if i < len(cols) else n for i, n in enumerate(names)]


def _output_names(query: Any) -> list[str] | None:
    """A query's output column names (None: cannot be told: a `*`)."""
    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.SetOperation):
        return _output_names(query.this)
    if not isinstance(query, exp.Select):
        return None
    out = []
    for p in query.expressions:
        if isinstance(p, exp.Star) or isinstance(p, exp.Column) and isinstance(p.this, exp.Star):
            return None
        out.append(fold(p.alias_or_name))
    return out


def contested(tree: exp.Expression, tables: list[exp.Table], key: dict[int, tuple[str, str]],
              ) -> set[tuple[str, str]]:
    """The (ns, table) of the Cairn tables without an alias whose bare name
    another table, subquery, CTE or alias of the query also goes by: these
    need an alias of their own. `key`: id of each Cairn table node -> (ns, name)."""
    by_name: dict[str, set[tuple[str, str]]] = {}
    for t in tables:
        if id(t) in key and not t.alias:
            by_name.setdefault(fold(t.name), set()).add(key[id(t)])
    if not by_name:
        return set()
    others = {fold(a.name) for a in tree.find_all(exp.TableAlias) if a.name}
    others |= {fold(t.name) for t in tables if id(t) not in key and not t.alias}
    out: set[tuple[str, str]] = set()
    for name, owners in by_name.items():
        if len(owners) > 1 or name in others:
            out |= owners
    return out


def requalify(tree: exp.Expression, default_ns: str | None, ctes: set[int],
              renamed: dict[int, str], columns: Columns | None = None,
              ) -> list[tuple[exp.Column, str]]:
    """For each qualified column that names a table in `renamed` (node id ->
    its new alias), the column and that alias; to set once the tables are
    replaced. INVALID_ARGUMENT for a qualifier that names two items of one
    SELECT, as DuckDB's "Ambiguous reference to table"."""
    out = []
    for col in tree.find_all(exp.Column):
        found = find(col, default_ns, ctes, columns)
        if not any(id(f) in renamed for f in found):
            continue
        if len(found) > 1:
            raise InvalidArgument(
                f'Ambiguous reference to table "{col.table}" in {col.sql(dialect="duckdb")}: '
                "name it with its namespace (ns.table.column) or give the tables aliases")
        out.append((col, renamed[id(found[0])]))
    return out


def own_aliases(expression: exp.Expression, nodes: list[exp.Table], ctes: set[int],
                default_ns: str | None, state_of: Callable[[str, str], Any] | None = None,
                ) -> tuple[dict[int, str], list[tuple[exp.Column, str]]]:
    """The Cairn tables (by node id) that need an alias other than their bare
    name, as `contested` finds them, with those aliases (`ns.t`), and the
    columns that name them with the alias to name them by (`requalify`)."""
    key: dict[int, tuple[str, str]] = {}
    for node in nodes:
        if id(node) in ctes or not isinstance(node.this, exp.Identifier) or node.catalog:
            continue
        db = fold(node.db)
        ns = "system" if not db and default_ns == "system" else db or default_ns
        if ns:
            key[id(node)] = (ns, fold(node.name))
    if not key:
        return {}, []
    wanted = contested(expression, nodes, key)
    if not wanted:
        return {}, []
    taken = {fold(a.name) for a in expression.find_all(exp.TableAlias)}
    renamed: dict[int, str] = {}
    for node in nodes:
        if id(node) in key and not node.alias and key[id(node)] in wanted:
            ns, name = key[id(node)]
            alias = f"{ns}.{name}"
            while alias in taken:
                alias += "_"
            renamed[id(node)] = alias
    columns = None if state_of is None else table_columns(default_ns, state_of)
    return renamed, requalify(expression, default_ns, ctes, renamed, columns)


def keep_names(expression: exp.Expression, requalified: set[int]) -> None:
    """Name each SELECT item that reads a table and has no alias by its text
    as written (a subquery item of the statement's SELECT, where sqlgrammar
    marked it; else sqlglot's text of it): DuckDB names it by its text as run, the views' SQL with the
    data files' paths (`(SELECT count_star() FROM (SELECT k, ... read_parquet(
    '/srv/data/files/...')))`), which every answer's `columns` showed. So too
    an expression over a column `requalified` names (by id): `max(r1b.t.v)`,
    not `max("r1b.t".v)`."""
    for select in list(expression.find_all(exp.Select)):
        for item in list(select.expressions):
            if isinstance(item, exp.Alias | exp.Column | exp.Star) or item.alias:
                continue  # (a subquery's alias is its own: `(SELECT ...) AS c0`)
            if item.find(exp.Table) is not None or requalified and any(
                    id(c) in requalified for c in item.find_all(exp.Column)):
                written = item.meta.get("written")  # sqlgrammar/reprint.py's, if known
                name = written if isinstance(written, str) else item.sql(dialect="duckdb")
                alias = exp.Alias(alias=exp.to_identifier(name, quoted=True))
                item.replace(alias)
                alias.set("this", item)  # the same nodes: the table nodes found stay in it


# --- the columns of tables and CTEs (also storage/deleted_rule.py) -------------

Columns = Callable[[exp.Table], "list[str] | None"]  # a Cairn table's column names (None: unknown)


def cte_of(table: exp.Table) -> exp.CTE | None:
    """The CTE in scope that a table reference of its name reads, or None."""
    name = fold(table.name)
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
        for cte in with_.expressions if isinstance(with_, exp.With) else []:
            if fold(cte.alias) == name:
                found: exp.CTE = cte
                return found
        node = node.parent
    return None


def selects(query: Any) -> list[exp.Select]:
    """The SELECTs whose rows a query's rows are (a set operation's branches)."""
    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.Select):
        return [query]
    if isinstance(query, exp.SetOperation):
        return selects(query.left) + selects(query.right)
    return []


def table_columns(default_ns: str | None, state_of: Callable[[str, str], Any]) -> Columns:
    """A Cairn table reference's column names ([] for a system table, None
    when the table cannot be read here: the rewrite tells the error)."""

    def columns(node: exp.Table) -> list[str] | None:
        db = fold(node.db)
        ns = db or default_ns
        if node.catalog or not ns or ns == "system" or not db and default_ns == "system":
            return []  # not a Cairn table: no `_deleted`
        try:
            return [c["name"] for c in state_of(ns, fold(node.name)).columns]
        except CairnError:
            return None
    return columns
