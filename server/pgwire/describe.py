"""Describe(statement): the columns a prepared statement will return, found
without side effects. Queries run with NULL parameters and no rows; EXPLAIN's
columns are always the same; SUMMARIZE summarises no rows.

Only statements starting with SELECT, WITH, VALUES, SHOW, DESCRIBE, TABLE or
FROM were described: a query in parentheses, EXPLAIN, SUMMARIZE, PIVOT and
UNPIVOT were said to return no rows (NoData), then rows came, and asyncpg
(which describes every statement) failed on them."""

from __future__ import annotations

import re

from . import types as t

EXPLAIN_COLUMNS = [("explain_key", t.TEXT), ("explain_value", t.TEXT)]  # storage/explain.py
QUERIES = ("SELECT", "WITH", "VALUES", "PIVOT", "UNPIVOT")  # run as SELECT * FROM (…) LIMIT 0
READS = (*QUERIES, "SHOW", "DESCRIBE", "TABLE", "FROM", "SUMMARIZE", "EXPLAIN")
_SUMMARIZE = re.compile(r"\s*SUMMARIZE\s+(.*)$", re.IGNORECASE | re.DOTALL)


def first_word(sql: str) -> str:
    """The statement's first word, upper case, past any opening parentheses."""
    return sql.lstrip("( \t\r\n")[:12].upper()


def no_rows(probe: str) -> str:
    """`probe`, a query, run for its columns alone. The newline ends a `--`
    comment that ends the query (it swallowed the closing parenthesis)."""
    return f"SELECT * FROM ({probe}\n) AS cairn_describe LIMIT 0"


def summarize_no_rows(probe: str) -> str:
    """`SUMMARIZE <table or query>` of no rows: the same columns, nothing read."""
    m = _SUMMARIZE.match(probe)
    if m is None:
        return probe
    what = m.group(1)
    query = what if first_word(what).startswith(("SELECT", "WITH", "VALUES", "FROM")) else (
        f"SELECT * FROM {what}")
    return f"SUMMARIZE {no_rows(query)}"
