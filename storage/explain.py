"""Queries that explain themselves: EXPLAIN [ANALYZE], SUMMARIZE, DESCRIBE SELECT
and PIVOT, inside the same sandbox as SELECT.

Each is turned into the query it reads (SUMMARIZE ns.t reads `SELECT * FROM
ns.t`, PIVOT reads `SELECT * FROM (PIVOT ...)`), that query goes through the
same allow-list (`sandbox.check_query`) and the same rewriting (`plan_query`:
Cairn's snapshots, USER-table filtering, soft deletes), and only then is the
DuckDB keyword put in front of the rewritten SQL. So none of them can read
anything the SELECT could not. EXPLAIN adds what the rewriting decided: per
table, the Parquet files and the buffered rows the query reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pyarrow as pa
from sqlglot import exp

from catalog.errors import InvalidArgument, PermissionDenied

from . import sandbox
from .limits import ResultLimits
from .query import Plan, plan_query

if TYPE_CHECKING:
    from .engine import Engine

PREFIX = {"select": "", "pivot": "", "summarize": "SUMMARIZE ", "describe": "DESCRIBE "}
WRITES = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}


def to_query(kind: str, expression: exp.Expression) -> tuple[exp.Expression, str]:
    """(the query `kind`'s statement reads, the DuckDB keyword to run it under).
    Raises PERMISSION_DENIED for anything that is not over a query or a table."""
    if kind in WRITES:
        raise InvalidArgument(
            f"EXPLAIN shows how a query reads; {WRITES[kind]} is not a query (EXPLAIN a "
            "SELECT with the same WHERE to see what it would read)")
    if kind == "select":
        return expression, PREFIX[kind]
    if kind == "pivot":
        wrapped: exp.Expression = exp.select("*").from_(exp.Subquery(this=expression.copy()))
        return wrapped, PREFIX[kind]
    if kind == "summarize":
        target = expression.this
        if isinstance(target, exp.Table) and isinstance(target.this, exp.Identifier):
            whole: exp.Expression = exp.select("*").from_(target.copy())
            return whole, PREFIX[kind]
        if isinstance(target, exp.Query):
            return cast(exp.Expression, target), PREFIX[kind]
        raise PermissionDenied("SUMMARIZE reads a Cairn table or a query, never a file")
    if kind == "describe" and isinstance(expression, exp.Describe):
        extra = [k for k, v in expression.args.items() if k != "this" and v]
        if extra or not isinstance(expression.this, exp.Query):
            raise PermissionDenied("DESCRIBE describes a query (DESCRIBE SELECT ...) or a "
                                   "table (DESCRIBE TABLE ns.t)")
        return cast(exp.Expression, expression.this), PREFIX[kind]
    raise PermissionDenied(
        "this statement is not allowed: Cairn runs SELECT, INSERT, UPDATE and DELETE on its "
        "own tables, and queries cannot touch files, the network or settings")


def _plan(engine: Engine, query: exp.Expression, user: str | None,
          namespace: str | None, limits: ResultLimits | None) -> Plan:
    """The query checked and rewritten as `Engine.select` does it (system tables
    as the caller may see them: `limits.system_view`)."""
    sandbox.check_query(query)
    system_table = engine._system_table
    if limits is not None and limits.system_view is not None:
        view = limits.system_view

        def system_table(name: str) -> pa.Table | None:
            table = engine._system_table(name)
            return None if table is None else view(name, table)

    return plan_query(query.copy(), user, namespace, engine.state, system_table,
                      engine.files, ranges=engine.file_ranges)


def run(engine: Engine, kind: str, expression: exp.Expression, user: str | None,
        namespace: str | None, *, timeout: float | None = None,
        limits: ResultLimits | None = None) -> pa.Table:
    """SUMMARIZE, DESCRIBE SELECT or PIVOT, run like a SELECT."""
    query, prefix = to_query(kind, expression)
    plan = _plan(engine, query, user, namespace, limits)
    plan.sql = prefix + plan.sql
    return engine.run_plan(plan, timeout, limits)


def explain(engine: Engine, kind: str, expression: exp.Expression, user: str | None,
            namespace: str | None, *, analyze: bool = False,
            timeout: float | None = None, limits: ResultLimits | None = None) -> pa.Table:
    """EXPLAIN [ANALYZE]: what the rewritten query reads, then DuckDB's plan.

    Rows of (explain_key, explain_value): one `table` row per Cairn table read
    (files, rows in files, buffered rows), one `file` row per Parquet file
    (path relative to the data dir), then `physical_plan` (EXPLAIN) or
    `analyzed_plan` (EXPLAIN ANALYZE, which runs the query)."""
    query, prefix = to_query(kind, expression)
    plan = _plan(engine, query, user, namespace, limits)
    reads = list(plan.reads)
    rewritten = prefix + plan.sql
    for placeholder, _ in plan.arrow:  # a table's buffered rows, registered as Arrow
        name = plan.names.get(placeholder, "")
        if not name.startswith("system."):
            rewritten = rewritten.replace(placeholder, f'"write buffer of {name}"')
    plan.sql = ("EXPLAIN ANALYZE " if analyze else "EXPLAIN ") + prefix + plan.sql
    result = engine.run_plan(plan, timeout)  # the plan text is never cut
    keys: list[str] = []
    values: list[str] = []
    for name, files, buffered in reads:
        keys.append("table")
        file_rows = sum(f.rows for f in files)
        size = sum(f.bytes for f in files)
        values.append(f"{name}: {len(files)} Parquet file{'' if len(files) == 1 else 's'} "
                      f"({file_rows} rows, {size} bytes), {buffered} buffered "
                      f"row{'' if buffered == 1 else 's'}")
        for f in files:
            keys.append("file")
            values.append(f"{name}: {f.path} ({f.rows} rows, {f.bytes} bytes, "
                          f"schema version {f.schema_version})")
    if not analyze:
        keys.append("rewritten_sql")
        values.append(_clean(rewritten, plan, engine))
    for row in result.to_pylist():
        key = str(row.get("explain_key") or ("analyzed_plan" if analyze else "physical_plan"))
        text = row.get("explain_value") or row.get("analyzed_plan") or ""
        keys.append(key)
        values.append(_clean(str(text), plan, engine))
    return pa.table({"explain_key": pa.array(keys, pa.string()),
                     "explain_value": pa.array(values, pa.string())})


def _clean(text: str, plan: Plan, engine: Engine) -> str:
    """No internal view names and no server paths in what the user reads."""
    for view, name in sorted(plan.names.items(), reverse=True):
        text = text.replace(view, name)
    return text.replace(str(engine.data_dir) + "/", "")
