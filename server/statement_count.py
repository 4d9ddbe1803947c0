"""The bound on a request's statements, checked before any of them runs.

Each statement is bounded (its time, its answer), a request's number of them
was not: one HTTP request of 100,000 × `SELECT 1;` (900 KB) ran 84 s of a core
and kept every result until the whole answer was sent (+420 MB); a 10 MB body
holds 1.1 million such statements. Up to MAX_STATEMENTS run; a request with
more is INVALID_ARGUMENT, and none of its statements runs."""

from __future__ import annotations

from sqlgrammar.errors import SqlSyntaxError
from sqlgrammar.splitter import split_script

MAX_STATEMENTS = 10_000


def first_past_limit(sql: str) -> tuple[int, int, int] | None:
    """Index, line and column of the statement past MAX_STATEMENTS, if `sql`
    holds one. Only a request with that many semicolons is split here; a text the
    splitter refuses is left for the parser to report."""
    limit = MAX_STATEMENTS
    if sql.count(";") < limit:
        return None
    try:
        for chunk in split_script(sql):
            if chunk.index > limit:
                return chunk.index, chunk.line, chunk.column
    except SqlSyntaxError:
        return None
    return None


def too_many_message() -> str:
    return (f"a request holds at most {MAX_STATEMENTS:,} statements (this one holds more): none of "
            "them ran; send them in several requests")
