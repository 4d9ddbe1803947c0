"""Statement -> handler, through one table.

A request's SQL is split and parsed by `sqlgrammar`; each statement is checked
for the caller's role and dispatched by its class. Statements run in order; the
first failure stops the request, and the results of those before it are kept.
The answers of a request share one bound (`AnswerBudget`): a statement's
answer gets what those before it left of [server] max_result_rows /
max_result_bytes, and is cut past it as one answer is past the bounds."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import SqlglotError

from catalog.diskerrors import from_oserror
from catalog.errors import (
    CairnError,
    Cancelled,
    InvalidArgument,
    InvalidRequest,
    ParseError,
)
from sqlgrammar import ast
from sqlgrammar.errors import EmptySql, SqlInvalid, SqlSyntaxError
from sqlgrammar.parser import iter_script
from storage.duckrestart import DuckFault
from storage.limits import AnswerBudget
from storage.names import function_name

from . import (
    archive_sql,
    attach,
    backups,
    dispatch,
    jobs_sql,
    namespaces,
    queries,
    schedules,
    set_backups,
    table_backups,
    tables,
    threadshare,
    verify_drop,
    visibility,
)
from .answers import Held, answer_bytes
from .dispatch import Route
from .result import Result
from .state import Cairn, Session
from .statement_count import first_past_limit, too_many_message
from .text import check_text

log = logging.getLogger("cairn.executor")

# Every statement class -> its handler and the role it needs, as each handler
# module declares them; a class claimed twice raises here, at import.
ROUTES: dict[type, Route] = dispatch.merge(
    namespaces.routes,
    tables.routes,
    queries.routes,
    backups.routes,
    attach.routes,
    jobs_sql.routes,
    schedules.routes,
    archive_sql.routes,
    table_backups.routes,
    set_backups.routes,
    verify_drop.routes,
)


@dataclass
class StatementError:
    error: CairnError
    statement: int
    line: int | None
    column: int | None


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)
    error: StatementError | None = None
    # The statement of the last result, as parsed (pgwire's command tag says
    # INSERT for a `WITH … INSERT`: its first word is no guide).
    statement: ast.Statement | None = None


async def execute(cairn: Cairn, session: Session, sql: str, held: Held | None = None) -> Outcome:
    """Run every statement of `sql` in order; stop at the first error.
    Each answer counts against `held` (the server's answers budget) as it is
    made: one that does not fit fails its statement (answers.py).

    Statements are parsed one at a time, so those before a statement that does
    not parse still run (the contract: earlier statements keep their effect).
    Text that is not valid Unicode is refused before anything runs. Error
    messages shown to a role-user carry no server paths."""
    check_text(sql, '"sql"')
    outcome = Outcome()
    cfg = cairn.config.server
    answers = AnswerBudget(cfg.max_result_rows or None, cfg.max_result_bytes or None)
    statements = iter_script(sql)
    index = 0
    # A big request is parsed on a statement thread: the fast path's pure
    # Python reading of a 10,000-row INSERT gives the GIL back every switch
    # interval, so other clients' statements run meanwhile (docs/architecture.md).
    big = len(sql) > PARSE_ON_THREAD_CHARS
    past = await cairn.run(first_past_limit, sql) if big else first_past_limit(sql)
    if past is not None:
        outcome.error = StatementError(InvalidArgument(too_many_message()), *past)
        return outcome
    while True:
        try:
            parsed = (await cairn.run(next, statements, None)) if big else next(statements, None)
            if parsed is None:
                return outcome
        except EmptySql:
            raise InvalidRequest('"sql" holds no statement') from None
        except SqlSyntaxError as exc:
            outcome.error = _parse_failure(ParseError(exc.message, exc.line, exc.column), exc)
            return outcome
        except SqlInvalid as exc:
            outcome.error = _parse_failure(InvalidArgument(exc.message), exc)
            return outcome
        except RecursionError:
            line, column = deepest(sql)
            outcome.error = StatementError(ParseError(TOO_DEEP, line, column), index + 1,
                                           line, column)
            return outcome
        index = parsed.index
        if session.gone is not None and session.gone():
            outcome.error = StatementError(Cancelled(CLIENT_GONE), index, parsed.line,
                                           parsed.column)
            return outcome
        stmt_session = session.with_text(parsed.text)
        stmt_session.answers, stmt_session.held = answers, held
        try:
            shared = answers.spent
            before = held.n if held is not None else 0
            result = await run_statement(cairn, stmt_session, parsed.statement)
            if result.table is None and result.rows:  # SHOW, DESCRIBE: not cut by a query
                _cut(cairn, result, answers, shared)
            answers.charge(len(result.rows), result.table)
            if held is not None and held.n == before:  # not counted as it was read (queries.py)
                held.take(answer_bytes(result))
            if result.truncated and shared:
                result.message = queries.truncation_note(cairn, result.row_count, shared=True)
            outcome.results.append(result)
            outcome.statement = parsed.statement
        except CairnError as exc:
            forget_trace(exc)  # else a cycle through this frame kept `outcome`'s rows
            if visibility.restricted(session):
                exc.message = visibility.scrub_message(cairn.config, session, exc.message)
            outcome.error = StatementError(exc, parsed.index, parsed.line, parsed.column)
            return outcome


CLIENT_GONE = "the client closed its connection: this statement and those after it did not run"


def _cut(cairn: Cairn, result: Result, answers: AnswerBudget, shared: bool) -> None:
    """An answer built from rows (SHOW, DESCRIBE), cut as a query's is at what
    the request's earlier answers left of its bounds, and its bytes charged
    (`"SHOW TABLES IN many;" * 10000` answered 148 MB past 64 MiB)."""
    keep = len(result.rows) if answers.left_rows is None else answers.left_rows
    if answers.left_bytes is not None:
        size = 0
        for i, row in enumerate(result.rows[:keep]):
            size += sum(len(str(v)) + 8 for v in row.values())
            if size > answers.left_bytes:
                keep = i
                break
        answers.left_bytes = max(0, answers.left_bytes - size)
    if keep < len(result.rows):
        if result.row_count == len(result.rows):
            result.row_count = keep
        del result.rows[keep:]
        result.truncated = True
        result.message = queries.truncation_note(cairn, keep, shared)


def forget_trace(exc: BaseException) -> None:
    """Drop what an exception holds of the stack it came through. Its traceback
    holds the frames it passed (rows, an Arrow table, an answer's bytes), and a
    frame that keeps the exception makes a cycle that only a full collection
    frees: with `gc.freeze()` that held ~115 MB per answer a client hung up on."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None


# Requests longer than this are parsed on a statement thread (a 1,000-row
# INSERT is about 35,000 characters and takes ~5 ms to read on the fast path).
PARSE_ON_THREAD_CHARS = 16_384


TOO_DEEP = (
    "the statement nests too deeply (parentheses, subqueries or expressions): "
    "write it with fewer levels"
)


def deepest(sql: str, limit: int = 100) -> tuple[int, int]:
    """Line and column (1-based) of the first parenthesis nested `limit` deep,
    outside quotes; else of the deepest one."""
    depth = best = 0
    where = 0
    quote = ""
    for i, ch in enumerate(sql):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
            if depth > best:
                best, where = depth, i
            if depth >= limit:
                break
        elif ch == ")":
            depth -= 1
    line = sql.count("\n", 0, where) + 1
    return line, where - (sql.rfind("\n", 0, where) + 1) + 1


def _parse_failure(error: CairnError, exc: SqlSyntaxError | SqlInvalid) -> StatementError:
    return StatementError(error, exc.statement or 1, exc.line, exc.column)


async def run_statement(cairn: Cairn, session: Session, stmt: ast.Statement) -> Result:
    """One statement: the caller's role is checked against the handler's
    declaration, then the handler runs (a role user's waits for a statement
    thread within its query timeout: threadshare.py)."""
    if session.is_admin:  # any thread (threadshare.py)
        return await _run_statement(cairn, session, stmt)
    with threadshare.statement(session, cairn.config.server.query_timeout_seconds):
        return await _run_statement(cairn, session, stmt)


async def _run_statement(cairn: Cairn, session: Session, stmt: ast.Statement) -> Result:
    route = ROUTES.get(type(stmt))
    if route is None:
        raise InvalidArgument(f"{type(stmt).__name__} is not implemented yet")
    route.check(session, stmt)
    if cairn.duck_faults.active(stmt):  # quarantined, or its user braked
        await cairn.duck_faults.check(cairn.run, session, stmt)
    try:
        return await route.handler(cairn, session, stmt)
    except DuckFault:
        cairn.duck_faults.record(session, stmt)
        raise
    except RecursionError as exc:
        if not nests_too_deeply(stmt, exc):
            raise  # a bug (a 500 with its trace), not the statement's fault
        raise InvalidArgument(TOO_DEEP) from None
    except OSError as exc:  # the data directory's disk (a target's are mapped already)
        if (disk := from_oserror(cairn.config.data_dir, exc)) is None:
            raise
        raise disk from None
    except (SqlglotError, TypeError, AttributeError, ValueError, IndexError, KeyError) as exc:
        if not raised_in_sqlglot(exc):
            raise
        log.info("a statement sqlglot cannot write for DuckDB: %s: %s", type(exc).__name__, exc)
        call = unwritable_call(stmt)
        raise InvalidArgument(
            f"function {call}() cannot be called with these arguments" if call else
            "the statement cannot be written as DuckDB SQL") from None


def nests_too_deeply(stmt: ast.Statement, exc: RecursionError) -> bool:
    """Whether a handler's RecursionError is the statement's own nesting: a query
    (its sqlglot tree is the statement's text) or sqlglot itself. Anything else
    says nothing of the statement: a manifest nested ~1000 deep in a target made
    SHOW BACKUPS IN answer that the statement nests too deeply."""
    if isinstance(stmt, (ast.Query, ast.Explain)):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if f"{os.sep}sqlglot{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def raised_in_sqlglot(exc: BaseException) -> bool:
    """Whether `exc` was raised inside sqlglot (its compiled modules' frames
    name their build path, `/project/sqlglot/...`). sqlglot parses calls it
    cannot write back (`DATE()`, `BOOLNOT(1, 2)`, ~30 such shapes): that is
    the statement's fault, not a bug (it was a 500)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last, tb = tb.tb_frame, tb.tb_next
    return last is not None and f"{os.sep}sqlglot{os.sep}" in last.f_code.co_filename


def unwritable_call(stmt: ast.Statement) -> str | None:
    """The innermost function call of the statement's trees that sqlglot
    cannot write as DuckDB SQL on its own (only on that error's path)."""
    tree = getattr(stmt, "expression", None)
    failing = None
    if isinstance(tree, exp.Expression):
        for node in tree.walk():  # breadth first: a later failing call is deeper
            if isinstance(node, exp.Func):
                try:
                    node.sql(dialect="duckdb")
                except Exception:  # noqa: BLE001 - any failure names the call
                    failing = node
    return function_name(failing) if failing is not None else None
