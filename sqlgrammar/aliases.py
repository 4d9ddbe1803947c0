"""Names a query gives its tables and values, checked where sqlglot is more
lenient than DuckDB and PostgreSQL.

sqlglot reads a reserved word left dangling after a table as the table's
alias: `DELETE FROM ns.t LIMIT` (a statement cut short in a script) was
`DELETE FROM ns.t AS "LIMIT"` and deleted every row, `UPDATE ns.t ORDER SET
v = 0` updated every row. DuckDB and PostgreSQL call each a syntax error. So
is a reserved word as a table's or a CTE's name, or as a value's name written
without AS (`SELECT 1 limit`); `SELECT 1 AS limit` is taken, as both take it."""

from __future__ import annotations

import re

from sqlglot import exp

from .errors import SqlSyntaxError
from .splitter import Chunk

# DuckDB's reserved keywords (`duckdb_keywords()`, keyword_category 'reserved';
# tests/sqlgrammar/test_aliases.py holds this list to DuckDB's).
_RESERVED_WORDS = """
all analyse analyze and any array as asc asymmetric both case cast check collate column
constraint create default deferrable desc describe distinct do else end except false fetch
for foreign from group having in initially intersect into lambda lateral leading limit not
null offset on only or order pivot pivot_longer pivot_wider placing primary qualify
references returning select show some summarize symmetric table then to trailing true union
unique unpivot using variadic when where window with
"""
RESERVED = frozenset(_RESERVED_WORDS.split())
_AS_BEFORE = re.compile(r"(?:^|[^\w$])as\s*$", re.IGNORECASE)


def absolute(chunk: Chunk, line: int, column: int) -> tuple[int, int]:
    """Statement-relative position -> position in the whole request."""
    if line <= 1:
        return chunk.line, chunk.column + column - 1
    return chunk.line + line - 1, column


def check_aliases(chunk: Chunk, expression: exp.Expression, source: str) -> None:
    """Refuse what DuckDB would not parse: a reserved word as a name (above),
    and a name in a VALUES row (`VALUES (1 x)` would insert 1 and drop the
    name without a word)."""
    values = expression.args.get("expression") if isinstance(expression, exp.Insert) else expression
    if isinstance(values, exp.Values):
        for row in values.expressions:
            for cell in row.expressions if isinstance(row, exp.Tuple) else [row]:
                if isinstance(cell, exp.Alias):
                    raise SqlSyntaxError(
                        f"a VALUES row cannot name its values (found the name {cell.alias!r})",
                        chunk.line, chunk.column, [], chunk.index)
    for node in expression.find_all(exp.TableAlias, exp.Alias):
        if isinstance(node, exp.Alias):
            names = [node.args.get("alias")]
        else:
            names = [node.this, *(node.args.get("columns") or [])]
        for name in names:
            if (isinstance(name, exp.Identifier) and not name.quoted
                    and name.name.lower() in RESERVED):
                start = name.meta.get("start")
                if isinstance(node, exp.Alias) and (
                        start is None or _AS_BEFORE.search(source[:start])):
                    continue  # a value's name after AS (or one sqlglot made)
                line, column = absolute(chunk, name.meta.get("line") or 1,
                                        max(1, (name.meta.get("col") or 1) - len(name.name) + 1))
                raise SqlSyntaxError(
                    f"syntax error at or near {name.name!r} (a reserved word cannot name a "
                    f'table or, without AS, a value: write "{name.name}" to use it as a name)',
                    line, column, [], chunk.index)
