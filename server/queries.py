"""Ordinary SQL: SELECT through the engine's DuckDB; INSERT / UPDATE / DELETE as
new row versions. Anything else sqlglot parsed (COPY, ATTACH, PRAGMA, SET, ...)
is refused with PERMISSION_DENIED, as is any query off the sandbox allow-list."""

from __future__ import annotations

from catalog.errors import PermissionDenied
from sqlgrammar.ast import Query

from .result import Result
from .state import Cairn, Session

VERBS = {"insert": "inserted", "update": "updated", "delete": "deleted"}


async def run_query(cairn: Cairn, session: Session, stmt: Query) -> Result:
    if stmt.kind == "select":
        table = await cairn.run(
            cairn.engine.query, stmt.expression, session.user_id, session.namespace,
            timeout=cairn.config.server.query_timeout_seconds or None,
        )
        return Result.of_arrow(table)
    if stmt.kind in VERBS:
        n = await cairn.run(
            cairn.engine.execute, stmt.expression, session.user_id, session.namespace
        )
        return Result.of_message(f"{n} row{'' if n == 1 else 's'} {VERBS[stmt.kind]}", row_count=n)
    first = stmt.sql.split(None, 1)[0].upper() if stmt.sql.strip() else "this statement"
    raise PermissionDenied(
        f"{first} is not allowed: Cairn runs SELECT, INSERT, UPDATE and DELETE on its own "
        "tables, and queries cannot touch files, the network or settings"
    )


HANDLERS = {Query: run_query}
