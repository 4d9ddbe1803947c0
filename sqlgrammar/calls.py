"""Calls of functions DuckDB does not have go to DuckDB as written.

sqlglot knows the functions of many SQL dialects and rewrites a call of one
into DuckDB's nearest form: `iif(c, a, b)` became CASE WHEN, `nvl(a, b)`
COALESCE, `array_join(l, '-')` array_to_string, `initcap(s)` a page of
regexp and list calls, `CONVERT(1, VARCHAR)` a cast. DuckDB has none of these
names and refuses such a statement; Cairn ran sqlglot's version of it (and
the version was not always what the other dialect meant either). So every
name sqlglot's DuckDB parser builds a call from that is not one of DuckDB's
functions (duckdb_functions() of a plain in-memory DuckDB, read once here)
and not a form of DuckDB's own grammar (_DUCKDB_SYNTAX: CAST, EXTRACT,
COALESCE, ...) is read as an anonymous call, which Cairn writes back as
written: DuckDB then says the function does not exist, as it would.

This patches the DuckDB dialect's parser tables (FUNCTIONS, FUNCTION_PARSERS),
so it applies to every parse in the process once this module is imported
(sqlgrammar/reprint.py imports it)."""

from __future__ import annotations

from typing import Any

import duckdb
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

__all__ = ["AS_WRITTEN"]

# Names sqlglot builds a call from that DuckDB reads as its own syntax, not
# as a function of its catalog (found by trying each: `SELECT name(...)`
# is no "function does not exist" there). sqlglot keeps reading these.
_DUCKDB_SYNTAX = frozenset({
    "AND", "ARRAY", "CASE", "CAST", "CHAR", "COALESCE", "COLLATE", "DATE", "EXISTS",
    "EXTRACT", "GROUPING", "GROUPING_ID", "IFNULL", "OR", "TIME", "TIMESTAMP", "TRY",
    "TRY_CAST", "STRUCT", "COLUMNS",
    # ordered-set aggregates: DuckDB's grammar turns `percentile_cont(0.5)
    # WITHIN GROUP (ORDER BY x)` into quantile_cont; no function has the name
    "PERCENTILE_CONT", "PERCENTILE_DISC",
})


def _duckdb_functions() -> frozenset[str]:
    con = duckdb.connect(config={"autoload_known_extensions": "false"})
    try:
        rows = con.execute("SELECT DISTINCT upper(function_name) FROM duckdb_functions()")
        return frozenset(str(r[0]) for r in rows.fetchall())
    finally:
        con.close()


def _anonymous(name: str) -> Any:
    def built(args: list[Any], *rest: Any, **kw: Any) -> exp.Expression:
        return exp.Anonymous(this=name.lower(), expressions=args)
    return built


def _as_written() -> frozenset[str]:
    known = _duckdb_functions()
    parser = DuckDB.Parser
    names = {n for n in (*parser.FUNCTIONS, *parser.FUNCTION_PARSERS)
             if n.upper() not in known and n.upper() not in _DUCKDB_SYNTAX}
    for name in names:
        parser.FUNCTIONS[name] = _anonymous(name)
    parser.FUNCTION_PARSERS = {k: v for k, v in parser.FUNCTION_PARSERS.items() if k not in names}
    return frozenset(names)


# The names read as anonymous calls (iif, nvl, initcap, ...).
AS_WRITTEN = _as_written()
