"""Statement -> handler, through one table.

A request's SQL is split and parsed by `sqlgrammar`; each statement is checked
for the caller's role and dispatched by its class. Statements run in order; the
first failure stops the request, and the results of those before it are kept."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from catalog.errors import (
    CairnError,
    InvalidArgument,
    InvalidRequest,
    ParseError,
    PermissionDenied,
)
from sqlgrammar import ast
from sqlgrammar.errors import EmptySql, SqlInvalid, SqlSyntaxError
from sqlgrammar.parser import iter_script

from . import attach, backups, jobs_sql, namespaces, queries, schedules, tables
from .result import Result
from .state import Cairn, Session

log = logging.getLogger("cairn.executor")

Handler = Callable[[Cairn, Session, Any], Awaitable[Result]]

HANDLERS: dict[type, Handler] = {
    **namespaces.HANDLERS,
    **tables.HANDLERS,
    **queries.HANDLERS,
    **backups.HANDLERS,
    **attach.HANDLERS,
    **jobs_sql.HANDLERS,
    **schedules.HANDLERS,
}

ADMIN_ONLY: frozenset[type] = frozenset(
    {
        ast.CreateNamespace,
        ast.DropNamespace,
        ast.BackupDatabase,
        ast.RestoreDatabase,
        ast.VerifyBackup,
        ast.DropBackup,
        ast.KillJob,
        ast.PauseJob,
        ast.ResumeJob,
        ast.AttachBackups,
        ast.CreateSchedule,
        ast.DropSchedule,
    }
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


async def execute(cairn: Cairn, session: Session, sql: str) -> Outcome:
    """Run every statement of `sql` in order; stop at the first error.

    Statements are parsed one at a time, so those before a statement that does
    not parse still run (the contract: earlier statements keep their effect)."""
    outcome = Outcome()
    statements = iter_script(sql)
    while True:
        try:
            parsed = next(statements)
        except StopIteration:
            return outcome
        except EmptySql:
            raise InvalidRequest('"sql" holds no statement') from None
        except SqlSyntaxError as exc:
            outcome.error = _parse_failure(ParseError(exc.message, exc.line, exc.column), exc)
            return outcome
        except SqlInvalid as exc:
            outcome.error = _parse_failure(InvalidArgument(exc.message), exc)
            return outcome
        stmt_session = replace(session, text=parsed.text)
        try:
            outcome.results.append(await run_statement(cairn, stmt_session, parsed.statement))
        except CairnError as exc:
            outcome.error = StatementError(exc, parsed.index, parsed.line, parsed.column)
            return outcome


def _parse_failure(error: CairnError, exc: SqlSyntaxError | SqlInvalid) -> StatementError:
    return StatementError(error, exc.statement or 1, exc.line, exc.column)


async def run_statement(cairn: Cairn, session: Session, stmt: ast.Statement) -> Result:
    if type(stmt) in ADMIN_ONLY and not session.is_admin:
        raise PermissionDenied(
            f"{type(stmt).__name__} needs role admin; user '{session.user_id}' has role "
            f"{session.role}"
        )
    handler = HANDLERS.get(type(stmt))
    if handler is None:
        raise InvalidArgument(f"{type(stmt).__name__} is not implemented yet")
    return await handler(cairn, session, stmt)
