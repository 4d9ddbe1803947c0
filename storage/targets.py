"""The table a write statement (INSERT, UPDATE, DELETE) names."""

from __future__ import annotations

import re

from sqlglot import exp

from catalog.errors import InvalidArgument, PermissionDenied

from . import sandbox
from .buffer import TableState
from .ports import Writer

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a namespace's or table's (docs/sql.md)


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
    sandbox.check_fragment(node)
    if node.catalog:
        raise InvalidArgument(f"bad table name '{node.sql()}': use ns.table")
    if node.db == "system":
        raise PermissionDenied(f"system.{node.name} is read-only")
    ns = node.db or default_namespace
    if not ns:
        raise InvalidArgument(f"no namespace given for table '{node.name}'")
    return engine.state(ns, node.name)
