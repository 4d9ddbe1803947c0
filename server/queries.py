"""Ordinary SQL: SELECT through the engine's DuckDB; INSERT / UPDATE / DELETE as
new row versions. Anything else sqlglot parsed (COPY, ATTACH, PRAGMA, SET, ...)
is refused with PERMISSION_DENIED, as is any query off the sandbox allow-list."""

from __future__ import annotations

import time

import pyarrow as pa
from sqlglot import exp

from catalog.errors import PermissionDenied
from sqlgrammar.ast import Explain, Query
from sqlgrammar.fastpath import FastInsert, FastSelect
from storage import explain, fast, stopping
from storage.limits import ResultLimits
from storage.names import fold

from . import visibility
from .dispatch import Routes
from .result import Result
from .state import Cairn, Session

routes = Routes()

VERBS = {"insert": "inserted", "update": "updated", "delete": "deleted"}


def limits_for(cairn: Cairn, session: Session) -> ResultLimits:
    """The bounds of an answer to this caller ([server] max_result_rows /
    max_result_bytes) and what system tables look like to them."""
    cfg = cairn.config.server
    left = session.answers  # what the request's earlier answers left of the bounds
    return ResultLimits(
        max_rows=left.left_rows if left is not None else cfg.max_result_rows or None,
        max_bytes=left.left_bytes if left is not None else cfg.max_result_bytes or None,
        system_view=(visibility.system_table_for(cairn.config, session, cairn.engine.state)
                     if visibility.restricted(session) else None),
    )


def truncation_note(cairn: Cairn, rows: int, shared: bool = False) -> str:
    """Why an answer was cut; `shared`: the request's earlier answers took part
    of the bounds (they bound a request's answers together)."""
    cfg = cairn.config.server
    return (f"answer truncated to its first {rows} row{'' if rows == 1 else 's'}: "
            + ("with the request's earlier answers " if shared else "")
            + f"it is larger than max_result_rows ({cfg.max_result_rows}) or max_result_bytes "
            f"({cfg.max_result_bytes}); narrow it with WHERE or LIMIT"
            + (", or send it in a request of its own" if shared else ""))


def fold_names(expression: exp.Expression, small: bool = False) -> None:
    """Fold table names (ns, table) to lower case, as Cairn's own statements
    do: `INSERT INTO APP.NOTES` and `FROM App.Notes` name the table app.notes.
    `small`: a fast-path tree (sqlgrammar/fastpath.py), whose one table is
    found where it stands, without walking the tree."""
    if small:
        target = expression.args.get("from_") or expression
        table = target.this if isinstance(target.this, exp.Table) else target.this.this
        _fold(table)
        return
    for table in expression.find_all(exp.Table):
        _fold(table)


def _fold(table: exp.Table) -> None:
    if not isinstance(table.this, exp.Identifier):
        return
    for part in ("this", "db", "catalog"):
        ident = table.args.get(part)
        if isinstance(ident, exp.Identifier) and ident.name != fold(ident.name):
            ident.set("this", fold(ident.name))


@routes.handles(Query, role="user")
async def run_query(cairn: Cairn, session: Session, stmt: Query) -> Result:
    timeout = session.query_timeout(cairn.config.server.query_timeout_seconds)
    if isinstance(stmt.fast, FastInsert):  # an INSERT of literals read without a tree
        return await _insert_rows(cairn, session, stmt.fast, timeout)
    if isinstance(stmt.fast, FastSelect):  # a point SELECT: its tree only if needed
        return bounded(cairn, await cairn.run_small(
            _point_select, cairn, session, stmt, timeout, limits_for(cairn, session)))
    if stmt.expression is not None:
        fold_names(stmt.expression, stmt.small)
    # A one-row statement is tried on the event loop first (Cairn.run_small).
    run = cairn.run_small if stmt.small else cairn.run
    if stmt.kind == "select":
        table = await run(
            cairn.engine.query, stmt.expression, session.user_id, session.namespace,
            timeout=timeout, limits=limits_for(cairn, session),
            interrupt=session.interrupt.target if session.interrupt is not None else None,
            owned=True,  # parsed for this request alone: no copy needed
            small=stmt.small,
        )
        return await answer(cairn, table, session)
    if stmt.kind in explain.PREFIX:  # SUMMARIZE, DESCRIBE SELECT, PIVOT
        table = await cairn.run(
            explain.run, cairn.engine, stmt.kind, stmt.expression, session.user_id,
            session.namespace, timeout=timeout, limits=limits_for(cairn, session),
        )
        return await answer(cairn, table, session)
    if stmt.kind in VERBS:
        until = _until(timeout)

        def write() -> int:  # tried again after a wait for a lock: the same end
            with cairn.engine.time_limit(timeout, until), stopping.stoppable(session.interrupt):
                return cairn.engine.execute(stmt.expression, session.user_id, session.namespace,
                                            limits_for(cairn, session).system_view)

        n = await run(write)
        return Result.of_message(f"{n} row{'' if n == 1 else 's'} {VERBS[stmt.kind]}", row_count=n)
    first = stmt.sql.split(None, 1)[0].upper() if stmt.sql.strip() else "this statement"
    raise PermissionDenied(
        f"{first} is not allowed: Cairn runs SELECT, INSERT, UPDATE and DELETE on its own "
        "tables, and queries cannot touch files, the network or settings"
    )


async def _insert_rows(cairn: Cairn, session: Session, ins: FastInsert,
                       timeout: float | None) -> Result:
    """The fast path's INSERT of literals (sqlgrammar/fastpath.py, fastrows.py):
    its typed description straight to storage (`storage.fast.insert_rows`),
    where the tree would have been built, folded, checked and read back to the
    same rows. One row is tried on the event loop first, as any one-row
    statement; many rows run on a statement thread, as the normal path's."""
    until = _until(timeout)

    def write() -> int:  # tried again after a wait for a lock: the same end
        with cairn.engine.time_limit(timeout, until), stopping.stoppable(session.interrupt):
            return fast.insert_rows(cairn.engine, ins.db, ins.table, ins.columns, ins.rows,
                                    session.user_id, session.namespace)

    n = await (cairn.run_small(write) if len(ins.rows) == 1 else cairn.run(write))
    return Result.of_message(f"{n} row{'' if n == 1 else 's'} inserted", row_count=n)


def _until(timeout: float | None) -> float | None:
    """When a statement starting now ends (monotonic), for every try of it."""
    return time.monotonic() + timeout if timeout else None


def _point_select(cairn: Cairn, session: Session, stmt: Query, timeout: float | None,
                  limits: ResultLimits) -> pa.Table:
    """The fast path's point SELECT: answered off the snapshot from its typed
    description (storage/fast.py), else its tree built, folded and run as
    any one-row SELECT (where the errors come from). In the caller's mode:
    on the event loop, either may raise WouldWait (run again on a thread)."""
    f = stmt.fast
    table = fast.select(cairn.engine, f.db, f.table, f.columns, f.key, f.text, f.is_string,
                         f.negative, session.user_id, session.namespace, timeout, limits)
    if table is not None:
        return table
    fold_names(stmt.expression, small=True)
    return cairn.engine.query(
        stmt.expression, session.user_id, session.namespace, timeout=timeout, limits=limits,
        interrupt=session.interrupt.target if session.interrupt is not None else None,
        owned=True, small=True)


# An answer of more rows than this is made into JSON values on a statement
# thread, not on the event loop (100,000 rows held it for seconds).
ROWS_ON_THE_LOOP = 2000


async def answer(cairn: Cairn, table: pa.Table, session: Session) -> Result:
    """`bounded`, off the event loop for a large answer. The rows count
    against the server's answers budget from here (answers.py): a query's
    table waiting for a thread to be made into values was held outside it
    (24 of them, one role user's: 1.4 GB)."""
    if session.held is not None and table.num_rows:
        session.held.take(int(table.get_total_buffer_size()))
    if table.num_rows > ROWS_ON_THE_LOOP:
        return await cairn.run(bounded, cairn, table)
    return bounded(cairn, table)


def bounded(cairn: Cairn, table: pa.Table) -> Result:
    """The answer, with the note if ResultLimits cut it."""
    result = Result.of_arrow(table)
    if ResultLimits.truncated(table):
        result.truncated = True
        result.message = truncation_note(cairn, result.row_count)
    return result


@routes.handles(Explain, role="user")
async def run_explain(cairn: Cairn, session: Session, stmt: Explain) -> Result:
    """EXPLAIN [ANALYZE] of a query, after the sandbox's checks and rewriting."""
    if stmt.query.expression is not None:
        fold_names(stmt.query.expression)
    table = await cairn.run(
        explain.explain, cairn.engine, stmt.query.kind, stmt.query.expression,
        session.user_id, session.namespace, analyze=stmt.analyze,
        timeout=cairn.config.server.query_timeout_seconds or None,
        limits=limits_for(cairn, session),
    )
    return bounded(cairn, table)
