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

# The words DuckDB's parser refuses as a table's (or a CTE's) name, and the
# further words it refuses as a value's name written without AS (`SELECT 1
# year`); tests/sqlgrammar/test_aliases.py derives both from DuckDB's parser
# over `duckdb_keywords()` and holds these lists to it.
_TABLE_WORDS = """
all analyse analyze and anti any array as asc asof asymmetric at authorization binary both
by case cast check collate collation column concurrently constraint create cross default
deferrable desc describe distinct do else end except false fetch for foreign freeze from
full glob group having ilike in initially inner intersect into is isnull join lambda lateral
leading left like limit natural not notnull null offset on only or order outer overlaps
pivot pivot_longer pivot_wider placing positional primary qualify references returning right
select semi show similar some summarize symmetric table tablesample then to trailing true
union unique unpack unpivot using variadic verbose when where window with
"""
_BARE_VALUE_WORDS = """
centuries century day days decade decades escape exclude export_state filter hour hours
ignore microsecond microseconds millennia millennium millisecond milliseconds minute minutes
month months over precision quarter quarters rename replace respect second seconds varying
week weeks within without year years
"""
TABLE_WORDS = frozenset(_TABLE_WORDS.split())
BARE_VALUE_WORDS = (TABLE_WORDS - {"isnull", "notnull"}) | frozenset(_BARE_VALUE_WORDS.split())
_AS_BEFORE = re.compile(r"(?:^|[^\w$\"])as\s*$", re.IGNORECASE)


def absolute(chunk: Chunk, line: int, column: int) -> tuple[int, int]:
    """Statement-relative position -> position in the whole request."""
    if line <= 1:
        return chunk.line, chunk.column + column - 1
    return chunk.line + line - 1, column


def check_aliases(chunk: Chunk, expression: exp.Expression, source: str) -> None:
    """Refuse what DuckDB would not parse: a reserved word as a name (above),
    a dangling AS, and a name in a VALUES row (`VALUES (1 x)` would insert 1 and drop the
    name without a word)."""
    values = expression.args.get("expression") if isinstance(expression, exp.Insert) else expression
    if isinstance(values, exp.Values):
        for row in values.expressions:
            for cell in row.expressions if isinstance(row, exp.Tuple) else [row]:
                if isinstance(cell, exp.Alias):
                    raise SqlSyntaxError(
                        f"a VALUES row cannot name its values (found the name {cell.alias!r})",
                        chunk.line, chunk.column, [], chunk.index)
    if _AS_BEFORE.search(source.rstrip().removesuffix(";")):  # sqlglot drops a dangling AS
        raise SqlSyntaxError("syntax error at end of input (AS names nothing)",
                             *absolute(chunk, *_line_column(source, len(source.rstrip()))),
                             [], chunk.index)
    for node in expression.find_all(exp.TableAlias, exp.Alias):
        value = isinstance(node, exp.Alias)
        names = [node.args.get("alias")] if value else [
            node.this, *(node.args.get("columns") or [])]
        for name in names:
            if not isinstance(name, exp.Identifier) or name.quoted:
                continue
            word = name.name.lower()
            if word not in (BARE_VALUE_WORDS if value else TABLE_WORDS):
                continue
            start = name.meta.get("start")
            if value and (start is None or _AS_BEFORE.search(source[:start])):
                continue  # a value's name after AS (or one sqlglot made)
            line, column = absolute(chunk, name.meta.get("line") or 1,
                                    max(1, (name.meta.get("col") or 1) - len(name.name) + 1))
            raise SqlSyntaxError(
                f"syntax error at or near {name.name!r} (a reserved word cannot name a "
                f'table or, without AS, a value: write "{name.name}" to use it as a name)',
                line, column, [], chunk.index)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
