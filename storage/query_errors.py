"""How a query DuckDB refused is told to the client.

DuckDB's message is the user's to read, with the engine's internal view names
put back as the user's table names, as a 400: the statement was wrong. An
IOException is not the statement's fault: user SQL cannot reach files (the
allow-list, and `enable_external_access = false`: that is a
PermissionException), so it comes from the server's own Parquet files, one
missing or unreadable. That is damage to the data directory, told as INTERNAL
(500), without the server's paths; the log names the file. Save one kind: a
query's spill to the data dir's tmp/duckdb-spill that could not be written
(the disk full, say) is the query's size meeting the machine, told as a 400
like running out of memory is."""

from __future__ import annotations

import logging
import re

import duckdb

from catalog.errors import CairnError, Internal, InvalidArgument

from .query import Plan
from .sandbox import SPILL_DIR

log = logging.getLogger("cairn.storage")


def clean(message: str, plan: Plan) -> str:
    """A DuckDB error as the user should read it: no internal view names, and
    none of its advice to SET what a query may not set (`SET
    max_expression_depth TO x`: PERMISSION_DENIED if followed)."""
    for view, name in sorted(plan.names.items(), reverse=True):
        message = message.replace(view, name)
    message = _SET_ADVICE.sub("", message)
    return message.split("\n\nLINE")[0].strip()


_SET_ADVICE = re.compile(r"\s*(?:Use|use|Try|try)[^.]*\b(?:SET|PRAGMA)\b[^.]*\.?")


def query_failed(exc: duckdb.Error, plan: Plan) -> CairnError:
    """The error a query that DuckDB failed raises."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        # DuckDB's advice (PRAGMA, SET) is not the client's to follow.
        first = clean(str(exc), plan).split("\n")[0]
        return InvalidArgument(
            f"{first} The query needs more than [storage] duckdb_memory_limit holds "
            f"and duckdb_spill_limit lets it write to disk.")
    if isinstance(exc, duckdb.IOException) and SPILL_DIR in str(exc):
        log.warning("a query's spill to disk failed: %s", exc)
        return InvalidArgument(
            "the query needs more memory than [storage] duckdb_memory_limit and its "
            "spill to disk could not be written (the server log says why)")
    if isinstance(exc, duckdb.IOException):
        log.error("a query could not read a data file: %s", clean(str(exc), plan))
        return Internal(
            "a table's data could not be read: the data directory is damaged or was "
            "changed outside the server (the server log names the file)"
        )
    return InvalidArgument(clean(str(exc), plan))
