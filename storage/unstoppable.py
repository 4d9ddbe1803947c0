"""Functions DuckDB cannot stop halfway through a vector of rows: its
interrupt (the query timeout, a cancel, KILL) is heard between vectors, so
a function's work on one vector (up to 2,048 rows) runs to its end, and what
it builds there is outside DuckDB's memory limit.

- jaro_similarity / jaro_winkler_similarity compare two strings in time that
  grows with their lengths multiplied (levenshtein, as long, hears it). Two
  literal strings of 1 MB ran ~15 s against a 10 s timeout; a 1,024-row
  vector of 64 KB pairs 38 s; 1 MB pairs would have run for hours. Past
  PAIR_MAX characters multiplied (a pair of 4,096; a vector of 2,048 of them
  ~0.5 s): refused.
- The functions that split a text into a list (string_split and its names,
  string_split_regex, regexp_split_to_array, regexp_extract_all) build a list
  entry and a string of ~36 bytes for each piece, none of it counted by the
  memory limit: 20 rows of 10 MB texts (built by string_agg, within the
  limit) took the server to 4.9 GB under a 1 GB limit and ran 14.4 s against
  a 3 s timeout; 80 of them would have been ~20 GB, the server killed.
  Past SPLIT_MAX bytes of text a row (a vector of 2,048 such rows: ~0.6 GB,
  ~2 s for the regular expression ones): refused.

So each DuckDB the server runs queries on holds macros of the same names,
which DuckDB finds before its own functions (a query, its column names and
its other bounds unchanged): the query fails as it reaches a row past the
bound, 22023 / INVALID_ARGUMENT with a clear message. The first argument
passes through random() so that DuckDB does not compute a call on constants
while it plans the query, before the guard is asked."""

from __future__ import annotations

import duckdb
from sqlglot import exp

from catalog.errors import InvalidArgument

PAIR_MAX = 1 << 24  # characters of one string times the other's
SPLIT_MAX = 1 << 13  # bytes of a text split into a list, a row

_PAIR = (f"length(a) * length(b) > {PAIR_MAX}",
         f"compares strings of at most {PAIR_MAX:,} characters multiplied (4,096 by 4,096): "
         "DuckDB cannot stop it midway, so longer ones would run past the query timeout")
_SPLIT = (f"strlen(a::VARCHAR) > {SPLIT_MAX}",
          f"splits a text of at most {SPLIT_MAX:,} bytes: DuckDB builds the lists of 2,048 "
          "rows at once, outside its memory limit, and cannot stop midway")
_TWO, _THREE, _FOUR = ("a", "b"), ("a", "b", "c"), ("a", "b", "c", "d")

# DuckDB's name: (its parameter lists, the guard)
MACROS: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[str, str]]] = {
    "jaro_similarity": ((_TWO, _THREE), _PAIR),
    "jaro_winkler_similarity": ((_TWO, _THREE), _PAIR),
    "string_split": ((_TWO,), _SPLIT),
    "str_split": ((_TWO,), _SPLIT),
    "split": ((_TWO,), _SPLIT),
    "string_to_array": ((_TWO,), _SPLIT),
    "string_split_regex": ((_TWO, _THREE), _SPLIT),
    "str_split_regex": ((_TWO, _THREE), _SPLIT),
    "regexp_split_to_array": ((_TWO, _THREE), _SPLIT),
    "regexp_extract_all": ((_TWO, _THREE, _FOUR), _SPLIT),
}
# ... and sqlglot's names of them (a qualified call keeps the name as written)
GUARDED = frozenset(MACROS) | {"jarowinkler_similarity", "regexp_split"}


def _macro(name: str) -> str:
    params, (guard, refusal) = MACROS[name]
    overloads = []
    for names in params:
        own = ", ".join(("if(random() >= 0, a, NULL)", *names[1:]))
        overloads.append(f"({', '.join(names)}) AS CASE WHEN {guard} THEN "
                         f"error('{name}() {refusal}') ELSE system.main.{name}({own}) END")
    return f"CREATE OR REPLACE MACRO {name}" + ", ".join(overloads)


def define(con: duckdb.DuckDBPyConnection) -> None:
    """The guarding macros, in `con`'s database (every cursor sees them);
    before its configuration is locked."""
    for name in MACROS:
        con.execute(_macro(name))


def check_call(node: exp.Func, name: str) -> None:
    """A guarded function called by a qualified name (`system.main.
    jaro_similarity(...)`) would reach DuckDB's own, unguarded: refused."""
    if name in GUARDED and isinstance(node.parent, exp.Dot) and node.parent.expression is node:
        raise InvalidArgument(f"call {name}() by its name alone, not qualified by a schema")
