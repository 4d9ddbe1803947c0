"""The shape of a catalog query's tree before it runs on the catalog's DuckDB:
its result columns named as PostgreSQL names them, and its columns written
with their schema (`pg_catalog.pg_namespace.nspname`, as SQLAlchemy 2.x
writes every column of its reflection queries) read as the relation's."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from catalog.errors import PermissionDenied
from storage.names import fold
from storage.sandbox import denied_function

USER_WORDS = ("current_user", "session_user", "user", "current_role")
CATALOG_SCHEMAS = ("pg_catalog", "information_schema")


def func_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def named(tree: exp.Expression) -> exp.Expression:
    """Name unnamed result columns as PostgreSQL does: a column by its name, a
    function call by the function, anything else `?column?`."""
    if not isinstance(tree, exp.Select):
        return tree
    source = tree.args.get("from_")  # `SELECT * FROM (SELECT f()) s`: the inner's names (a
    if [type(p) for p in tree.expressions] == [exp.Star] and source is not None and isinstance(
            source.this, exp.Subquery):  # Describe's probe of set_config(), describe.no_rows)
        named(source.this.this)
    out: list[Any] = []
    for p in tree.expressions:
        if isinstance(p, exp.Alias | exp.Star) or (
                isinstance(p, exp.Column) and not isinstance(p.this, exp.Star)
                and p.name.lower() not in USER_WORDS) or (
                isinstance(p, exp.Column) and isinstance(p.this, exp.Star)):
            out.append(p)
            continue
        if isinstance(p, exp.Column):  # current_user and friends, as bare words
            out.append(exp.alias_(p, p.name.lower(), quoted=True))
            continue
        inner = p.expression if isinstance(p, exp.Dot) else p
        name = func_name(inner) if isinstance(inner, exp.Func) else "?column?"
        name = {"current_version": "version"}.get(name, name)  # sqlglot's name for version()
        if isinstance(inner, exp.Case):
            name = "case"
        elif isinstance(inner, exp.Cast):
            name = inner.to.sql("postgres").lower().strip('"')
        out.append(exp.alias_(p, name, quoted=True))
    tree.set("expressions", out)
    return tree


def unqualified(tree: exp.Expression) -> None:
    """`pg_catalog.pg_class.relname` as `pg_class.relname`: each catalog
    relation runs as a view named by its own name (or its alias), which
    DuckDB cannot find under its schema: every query of SQLAlchemy 2.x's
    reflection failed to bind and was answered with no rows (no schemas, no
    tables, `has_table` false, a table reflected without columns)."""
    for column in tree.find_all(exp.Column):
        db = column.args.get("db")
        if db is not None and column.table and fold(db.name) in CATALOG_SCHEMAS:
            column.set("db", None)
            column.set("catalog", None)


def denied_table_function(node: exp.Func) -> None:
    """A table function the sandbox denies (files, settings: read_csv,
    duckdb_settings, query_table) beside catalog relations is refused as in
    any query (42501; until 2026-12-07 answered with no rows, as if Cairn
    modelled nothing of it). PostgreSQL's own (pg_options_to_table, psql's
    \\des+) and others Cairn does not model still answer no rows."""
    name = func_name(node)
    if not name.startswith("pg_") and denied_function(name):
        raise PermissionDenied(f"table function {name}() is not allowed: queries read "
                               "Cairn tables only")


def shown(node: exp.Expression) -> bool:
    """Whether `node` is a column of the answer (a regtype shows as its name)."""
    parent = node.parent.parent if isinstance(node.parent, exp.Alias) else node.parent
    return isinstance(parent, exp.Select) and parent is node.root()
