"""The DuckDB fault quarantine and brake (server/duckfaults.py) for pgwire
catalog queries, which run on the catalog's own DuckDB (pgcatalog.py).

A catalog query that made that DuckDB fail internally was answered with no
rows and could be sent again and again: each time the catalog DuckDB was
rebuilt, and other users' catalog queries running on it were answered
empty (wrong). Now it is told so (22023), quarantined for its user and
counted to their brake, as a query is; a query that met the DuckDB another
broke is told to run again (58030), not answered empty."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from sqlglot import exp

from catalog.errors import CairnError
from storage.duckrestart import DuckFault

from .. import threadshare
from ..duckfaults import LONG_TEXT
from ..session import Session
from ..state import Cairn
from .errors import PgError
from .pgcatalog import CatalogEngine
from .session_functions import SessionInfo


class _Connection(Protocol):
    """What of a pgwire connection (connection.py) a catalog query needs."""

    cairn: Cairn
    catalog: CatalogEngine
    session: Session
    info: SessionInfo


async def run(conn: _Connection, text: str, tree: exp.Expression
              ) -> tuple[list[tuple[str, int]], list[list[Any]]]:
    """(columns, rows) of the catalog query `text` (`tree`), unless it is
    quarantined or its user braked; a fault is remembered. As an ordinary
    SELECT (executor.run_statement, queries.run_query): a role user's wait
    for a thread counts in its query timeout (threadshare.py), the smaller
    of `statement_timeout` and `[server] query_timeout_seconds` bounds it,
    and a cancel of the statement (`session.interrupt`) stops it."""
    cairn, faults = conn.cairn, conn.cairn.duck_faults
    session = dataclasses.replace(conn.session, text=text)
    conn.info.namespace = session.namespace  # current_schema(): as search_path says now
    server_timeout = cairn.config.server.query_timeout_seconds
    try:
        with threadshare.statement(session, server_timeout):
            if faults.holds():
                if len(text) > LONG_TEXT:
                    await cairn.run(faults.refuse, session)
                else:
                    faults.refuse(session)
            try:
                answer: tuple[list[tuple[str, int]], list[list[Any]]] = await cairn.run(
                    session.stoppable(conn.catalog.run), cairn, tree, conn.info,
                    session.query_timeout(server_timeout))
            except DuckFault:
                faults.record(session, None)
                raise
    except CairnError as exc:  # past a bound of every query (pgcatalog.py), cancelled, braked
        raise PgError.of(exc) from None
    return answer
