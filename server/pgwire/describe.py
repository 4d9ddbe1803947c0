"""Describe(statement): the columns a prepared statement will return, found
without side effects. Queries run with NULL parameters and no rows; EXPLAIN's
columns are always the same; SUMMARIZE summarises no rows.

Only statements starting with SELECT, WITH, VALUES, SHOW, DESCRIBE, TABLE or
FROM were described: a query in parentheses, EXPLAIN, SUMMARIZE, PIVOT and
UNPIVOT were said to return no rows (NoData), then rows came, and asyncpg
(which describes every statement) failed on them.

What may run before Execute is what the parser calls a read (`reads`): a
query, Cairn's SHOW and DESCRIBE. Anything else (a `WITH … INSERT`, DDL, a
BACKUP, SET) was run by Describe(portal) unless it started with INSERT,
UPDATE or DELETE, so a portal described and closed had dropped a table."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from sqlgrammar import EmptySql, SqlInvalid, SqlSyntaxError, ast, parse_one
from sqlgrammar.splitter import split_script

from . import chatter, params, pgcatalog
from . import types as t
from .results import Reply
from .statements import Prepared

EXPLAIN_COLUMNS = [("explain_key", t.TEXT), ("explain_value", t.TEXT)]  # storage/explain.py
QUERIES = ("SELECT", "WITH", "VALUES", "PIVOT", "UNPIVOT")  # run as SELECT * FROM (…) LIMIT 0
READS = (*QUERIES, "SHOW", "DESCRIBE", "TABLE", "FROM", "SUMMARIZE", "EXPLAIN")
# Query kinds (sqlgrammar's `Query.kind`) and Cairn statements that change nothing.
READ_KINDS = frozenset({"select", "summarize", "describe", "pivot"})
READ_STATEMENTS = (ast.ShowNamespaces, ast.ShowTables, ast.DescribeTable, ast.ShowBackups,
                   ast.ShowBackup, ast.ShowJobs, ast.ShowJob, ast.ShowSchedules,
                   ast.ShowArchives, ast.ShowRestorePoints)
# Cairn's statements whose answer is rows a Describe cannot know without
# running them (a job's row, its shape by its options and outcome): a
# Describe(portal) runs them, as before 2026-12-05, or the rows came after
# NoData and psycopg with parameters, JDBC and asyncpg broke on them ("server
# sent data without prior row description"). Their jobs are asked for by
# the client's Bind; a portal described and closed, never executed, has run.
ANSWERS_ROWS = (ast.FlushTable, ast.FlushAllTables, ast.BackupDatabase, ast.RestoreDatabase,
                ast.BackupDatabases, ast.RestoreAll, ast.BackupTables, ast.RestoreTable,
                ast.VerifyBackup, ast.DropBackup, ast.AttachBackups, ast.KillJob, ast.PauseJob,
                ast.ResumeJob, ast.StartArchiving, ast.StopArchiving, ast.VerifyArchive)
_SUMMARIZE = re.compile(r"\s*SUMMARIZE\s+(.*)$", re.IGNORECASE | re.DOTALL)


async def shape(prepared: Prepared, settings: chatter.Settings, tx: bytes,
                off_loop: Callable[..., Awaitable[Any]],
                run: Callable[[str], Awaitable[Reply]]) -> list[tuple[str, int]] | None:
    """The columns a prepared statement will return, None for no rows.
    `off_loop(text, fn, *args)` and `run(text)`: the connection's."""
    sql = prepared.sql
    first = first_word(sql)
    if not first.startswith(READS):
        return None
    if first.startswith("EXPLAIN"):
        return list(EXPLAIN_COLUMNS)
    probe = await off_loop(sql, params.typed_nulls, sql, prepared.oids, prepared.spots)
    if await off_loop(probe, reads, probe) is False:  # a WITH … INSERT: no rows
        return None
    answer = chatter.answer(probe, settings, tx)
    if answer is not None:
        return answer.columns or None
    if first.startswith("SUMMARIZE"):
        probe = summarize_no_rows(probe)
    elif first.startswith(QUERIES) and (  # set_config(): no row, nothing set (chatter.ran)
            not pgcatalog.hinted(probe) or "set_config" in probe.lower()
            or await off_loop(probe, pgcatalog.parse, probe) is None):
        probe = no_rows(probe)
    return (await run(probe)).columns


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


async def runs_first(prepared: Prepared, sql: str,
                     off_loop: Callable[..., Awaitable[Any]]) -> bool:
    """Whether Describe(portal) runs the portal's statement `sql` for its
    columns: only a read does (`reads`; one the parser refuses fails there,
    changing nothing). Kept with the prepared statement once known: its
    parameters are literals, the statement's kind is not theirs."""
    if prepared.reads is None:
        found = await off_loop(sql, reads, sql)
        if found is None:
            return True
        prepared.reads = found
    return prepared.reads


def unrun_columns(sql: str) -> list[tuple[str, int]] | None:
    """The columns of a statement Describe(portal) does not run, where they
    are known without running it: EXPLAIN ANALYZE's; else None (NoData)."""
    return list(EXPLAIN_COLUMNS) if first_word(sql).startswith("EXPLAIN") else None


def reads(sql: str) -> bool | None:
    """Whether a Describe(portal) runs the statement `sql` for its columns,
    as the parser reads it: True for a read (a query, EXPLAIN of one: EXPLAIN
    without ANALYZE runs nothing; Cairn's SHOW and DESCRIBE) and for Cairn's
    statements that answer rows (ANSWERS_ROWS); False for anything else (a
    write, DDL, SET, BEGIN). None when the parser refuses it: it changes nothing wherever
    it runs (the executor refuses it; a catalog query or a SHOW of a setting,
    which the connection answers, only reads), but another text of the same
    statement (other parameters) may parse."""
    try:
        chunk = next(split_script(sql), None)
        if chunk is None:
            return None
        if chatter.changes(chunk.code):
            return False
        statement = parse_one(chunk.text)
        return is_read(statement) or isinstance(statement, ANSWERS_ROWS)
    except (SqlSyntaxError, SqlInvalid, EmptySql, RecursionError):
        return None


def is_read(statement: ast.Statement) -> bool:
    if isinstance(statement, ast.Query):
        return statement.kind in READ_KINDS
    if isinstance(statement, ast.Explain):
        return not statement.analyze or is_read(statement.query)
    return isinstance(statement, READ_STATEMENTS)
