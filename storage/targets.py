"""The table a write statement (INSERT, UPDATE, DELETE) names."""

from __future__ import annotations

import re

from sqlglot import exp

from catalog.errors import InvalidArgument, PermissionDenied

from . import sandbox
from .buffer import TableState
from .ports import Writer

# What a write's table may carry: its name and an alias. sqlglot hangs what
# follows the table in `UPDATE ns.t ... SET`, `DELETE FROM ns.t ...` on the
# table, not on the statement: a JOIN or a comma's second table (`UPDATE a.t AS
# x RIGHT JOIN range(2) r(i) ON false SET ...` stored rows with a NULL key),
# TABLESAMPLE, time travel, ... An allow-list, so a part a newer sqlglot parses
# is refused too.
_TABLE_PARTS = frozenset({"this", "db", "catalog", "alias"})
_SPELLED = {"joins": "JOIN", "laterals": "LATERAL", "pivots": "PIVOT", "hints": "WITH (hints)",
            "sample": "TABLESAMPLE", "version": "FOR SYSTEM_TIME / VERSION AS OF",
            "system_time": "FOR SYSTEM_TIME", "when": "AT / BEFORE", "changes": "CHANGES",
            "ordinality": "WITH ORDINALITY", "rows_from": "ROWS FROM", "indexed": "INDEXED BY",
            "format": "FILE_FORMAT"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a namespace's or table's (docs/sql.md)


def table_extra(node: exp.Table) -> str | None:
    """The first part of a write's table past its name and alias, as SQL
    spells it, or None."""
    for arg, value in node.args.items():
        if arg in _TABLE_PARTS or not value:
            continue
        if arg == "joins" and value[0].sql(dialect="duckdb").startswith(","):
            return "a second table after a comma"
        return _SPELLED.get(arg, arg.upper())
    return None


def resolve(engine: Writer, node: exp.Expression, default_namespace: str | None) -> TableState:
    """The table a write statement names. A name outside the rule is
    INVALID_ARGUMENT saying the rule: `INSERT INTO "ns.t"` was PERMISSION_DENIED,
    "looks like a file path", which a write target never is (DuckDB reads no
    file for it; a query's `FROM "x.csv"` still is)."""
    if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
        raise PermissionDenied("writes go to Cairn tables only")
    for part in (node.db, node.name):
        if part and not _NAME.fullmatch(part):
            hint = f" (write ns.table, not \"{part}\": a quoted name is one name)" \
                if "." in part else ""
            raise InvalidArgument(f"bad table name '{part}': a name is [A-Za-z_][A-Za-z0-9_]*, "
                                  f"at most 64 characters{hint}")
    extra = table_extra(node)
    if extra is not None:
        stmt = node.find_ancestor(exp.Insert, exp.Update, exp.Delete)
        what = stmt.key.upper() if stmt is not None else "a write"
        raise InvalidArgument(f"{what} ... {extra} is not supported: a write names one table, "
                              "by name and an alias (read other tables in a subquery of WHERE)")
    sandbox.check_fragment(node)
    if node.catalog:
        raise InvalidArgument(f"bad table name '{node.sql()}': use ns.table")
    if node.db == "system":
        raise PermissionDenied(f"system.{node.name} is read-only")
    ns = node.db or default_namespace
    if not ns:
        raise InvalidArgument(f"no namespace given for table '{node.name}'")
    return engine.state(ns, node.name)
