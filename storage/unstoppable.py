"""Functions DuckDB cannot stop halfway through a vector of rows: its
interrupt (the query timeout, a cancel, KILL) is heard between vectors, and
jaro_similarity / jaro_winkler_similarity compare two strings in time that
grows with their lengths multiplied (levenshtein, as long, hears it). Two
literal strings of 1 MB ran ~15 s against a 10 s timeout; a 1,024-row vector
of 64 KB pairs 38 s; 1 MB pairs (a table may hold them, and a query may build
them) would have run for hours, a statement thread and a core held.

So each DuckDB the server runs queries on holds macros of the same names,
which DuckDB finds before its own functions (a query, its column names and
its other bounds unchanged): past PAIR_MAX characters multiplied (a pair of
4,096; a vector of 2,048 of them ~0.5 s) the query fails as it reaches such
a pair, 22023 / INVALID_ARGUMENT with a clear message. Their argument passes
through random() so that DuckDB does not compute a call on constants while it
plans the query, before the guard is asked."""

from __future__ import annotations

import duckdb
from sqlglot import exp

from catalog.errors import InvalidArgument

PAIR_MAX = 1 << 24  # characters of one string times the other's
# (sqlglot names jaro_winkler_similarity jarowinkler_similarity)
GUARDED = ("jaro_similarity", "jaro_winkler_similarity", "jarowinkler_similarity")


def _macro(name: str) -> str:
    refusal = (f"{name}() compares strings of at most {PAIR_MAX:,} characters multiplied "
               "(4,096 by 4,096): DuckDB cannot stop it midway, so longer ones would run "
               "past the query timeout")
    guard = f"WHEN length(a) * length(b) > {PAIR_MAX} THEN error('{refusal}')"
    own = f"system.main.{name}(if(random() >= 0, a, NULL), b"
    return (f"CREATE OR REPLACE MACRO {name}(a, b) AS CASE {guard} ELSE {own}) END, "
            f"(a, b, cutoff) AS CASE {guard} ELSE {own}, cutoff) END")


def define(con: duckdb.DuckDBPyConnection) -> None:
    """The guarding macros, in `con`'s database (every cursor sees them);
    before its configuration is locked."""
    for name in GUARDED[:2]:
        con.execute(_macro(name))


def check_call(node: exp.Func, name: str) -> None:
    """A guarded function called by a qualified name (`system.main.
    jaro_similarity(...)`) would reach DuckDB's own, unguarded: refused."""
    if name in GUARDED and isinstance(node.parent, exp.Dot) and node.parent.expression is node:
        raise InvalidArgument(f"call {name}() by its name alone, not qualified by a schema")
