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
  entry and a string of ~33 bytes for each piece, none of it counted by the
  memory limit: 20 rows of 10 MB texts (built by string_agg, within the
  limit) took the server to 4.9 GB under a 1 GB limit and ran 14.4 s against
  a 3 s timeout; 80 of them would have been ~20 GB, the server killed.
- The functions that aggregate a list by hashing its elements (list_distinct,
  list_unique, list_mode, list_entropy, list_histogram, list_intersect,
  list_has_any / &&, list_has_all / @> / <@, list_aggregate of mode, entropy
  or histogram) take ~60 bytes outside the memory limit an element, and more
  time an element the longer the list: list_distinct of one list of 16.7M
  (list() builds it within the limit) ran 58.6 s against a 20 s timeout.

  What blows up there is one vector's total, not one row's size
  (bench/bench_unstoppable.py): 16 MiB of text in a vector is ~540 MB however
  it is cut into rows. So a row up to SPLIT_MAX bytes (LIST_MAX elements)
  passes as before, uncounted (a vector of 2,048 of them: ~0.5 GB, 1-5 s);
  the longer ones of one vector pass together up to SPLIT_VECTOR_MAX
  (LIST_VECTOR_MAX), which a function of DuckDB's own, given the whole
  vector, counts (VECTOR_OVER: Python, called only for the rows past the
  free bound): one 9 KB text, one list of 3,000 or of 200,000 elements, runs;
  a vector of many is refused as it is reached.

- mode, histogram, entropy and mad as window functions over a frame that moves
  (an ORDER BY, a frame) merge hash tables of the frame's values for every
  row, 2,048 rows a vector: `histogram(x % 100000) OVER (ORDER BY x ROWS
  BETWEEN 100000 PRECEDING AND CURRENT ROW)` over 300,000 rows took the
  server to 16.4 GB under a 1 GB limit and ran 114 s against a 20 s
  timeout; `mode(x) OVER (ORDER BY x)` 14 s for 50,000 rows; `mad(x) OVER
  (ORDER BY x)` over 6M rows 140 s against 20 s. Refused by the
  sandbox (`check_window`) unless the window is a whole partition or a ROWS
  frame of at most FRAME_MAX rows written in the query. A frame's work is a
  row's, every vector holds 2,048 of them, so the row's bound is the
  vector's: at FRAME_MAX, entropy takes ~0.8 s and ~140 MB a vector (over
  131,072 rows 49 s, heard between vectors), histogram ~0.5 s, mode and
  mad ~0.03 s (bench/bench_unstoppable.py). approx_top_k in a
  window allocates its whole state a row (k=3,000 over 2,000 rows: 3.7 GB):
  refused in any window.

So each DuckDB the server runs queries on holds macros of the same names,
which DuckDB finds before its own functions (a query, its column names and
its other bounds unchanged): the query fails as it reaches a row (or a
vector) past the bound, 22023 / INVALID_ARGUMENT with a clear message. The
first argument passes through random() so that DuckDB does not compute a
call on constants while it plans the query, before the guard is asked.
Inside a lambda a call sees its list's elements a batch at a time: there
the list is counted whole before the lambda runs (lambda_guard.py)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType
from sqlglot import exp

from catalog.errors import InvalidArgument

from .names import function_name

PAIR_MAX = 1 << 24  # characters of one string times the other's
# What blows up is a vector's total, not a row's size (bench/bench_unstoppable.py,
# one-byte pieces: ~33 bytes of memory a byte of text, whatever the rows' shape;
# 16 MiB a vector ~540 MB, 0.6-2.3 s for string_split, 4-6 s for
# regexp_extract_all): rows up to SPLIT_MAX pass as they are (2,048 of them
# are the 16 MiB above), and the longer texts of one vector pass together up
# to SPLIT_VECTOR_MAX (one text of 8 MiB: ~270 MB, 0.3 s; 2.5 s for
# regexp_extract_all), counted by VECTOR_OVER.
SPLIT_MAX = 1 << 13  # bytes of a text split into a list, a row, not counted
SPLIT_VECTOR_MAX = 1 << 23  # bytes of the longer texts of one vector together
# The lists' hashing grows faster than its elements on long lists (one list of
# 262,144: 0.2-0.7 s; 16 of them 2.7-16 s; one of 4,194,304 12-14 s): rows up
# to LIST_MAX elements pass as they are (2,048 of them ~250 MB, 1-1.3 s), and
# the longer lists of one vector pass together up to LIST_VECTOR_MAX.
LIST_MAX = 1 << 11  # elements of a list hashed, a row, not counted
LIST_VECTOR_MAX = 1 << 18  # elements of the longer lists of one vector together
VECTOR = 2048  # rows DuckDB works through at once (STANDARD_VECTOR_SIZE)
# A function of DuckDB's own that sees the whole vector: given the sizes of
# its rows past the free bound (and only those: the CASE around it passes the
# others by), whether the vector's running total has passed `most`.
VECTOR_OVER = "__internal_cairn_vector_over"  # a name sandbox denies to queries


def _vector_over(sizes: pa.Array, most: pa.Array) -> pa.Array:
    return pc.greater(pc.cumulative_sum(pc.fill_null(sizes, 0)), most)


def _counted(size: str, free: int, most: int, only: str = "") -> str:
    """The condition that refuses a row: its `size` past `free`, and the
    vector's sizes past `free` together past `most` (`only`: a further
    condition for being counted at all). One row past `most` is refused
    without counting: on constants DuckDB then folds the guard to the
    error as it plans, before it computes the call (range(1048576) twice in
    list_intersect: 0.5 s, not 3.3 s)."""
    return (f"CASE WHEN {size} > {most}{only} THEN true WHEN {size} > {free}{only} "
            f"THEN {VECTOR_OVER}({size}, {most}) ELSE false END")


_PAIR = (f"length(a) * length(b) > {PAIR_MAX}",
         f"compares strings of at most {PAIR_MAX:,} characters multiplied (4,096 by 4,096): "
         "DuckDB cannot stop it midway, so longer ones would run past the query timeout")
_SPLIT = (_counted("strlen(a::VARCHAR)", SPLIT_MAX, SPLIT_VECTOR_MAX),
          f"splits texts of up to {SPLIT_MAX:,} bytes a row, and longer ones up to "
          f"{SPLIT_VECTOR_MAX:,} bytes together among the {VECTOR:,} rows DuckDB works on at "
          "once (a vector): it builds their lists outside its memory limit and cannot stop "
          "midway (no setting moves this; split fewer long texts in one query)")
_LIST_WHY = (f"among the {VECTOR:,} rows DuckDB works on at once (a vector): it hashes them "
             "outside its memory limit and cannot stop midway")
_LIST = (_counted("len(a)", LIST_MAX, LIST_VECTOR_MAX),
         f"takes lists of up to {LIST_MAX:,} elements a row, and longer ones up to "
         f"{LIST_VECTOR_MAX:,} elements together {_LIST_WHY} (no setting moves this; aggregate "
         "the rows instead: list(DISTINCT x), mode(x), histogram(x), entropy(x))")
_PAIR_LIST = (_counted("len(a) + len(b)", LIST_MAX, LIST_VECTOR_MAX),
              f"takes two lists of up to {LIST_MAX:,} elements together a row, and longer pairs "
              f"up to {LIST_VECTOR_MAX:,} elements together {_LIST_WHY} (no setting moves "
              "this; join or aggregate the rows instead)")
# list_aggregate's aggregates that hash (the others take ~20-80 ns an element)
HASHING = ("mode", "entropy", "histogram", "histogram_exact", "approx_top_k")
_AGGREGATE = (_counted("len(a)", LIST_MAX, LIST_VECTOR_MAX, f" AND lower(b) IN {HASHING}"),
              f"of {', '.join(HASHING[:-1])} or {HASHING[-1]} " + _LIST[1])
_ONE, _TWO, _THREE, _FOUR = ("a",), ("a", "b"), ("a", "b", "c"), ("a", "b", "c", "d")

# Their lists pass as they are, not through random(): PostgreSQL's '[1,2]' &&
# [1] needs the literal to cast it (a call on constant lists, which
# value_bounds keeps within 1,048,576 elements, is computed as it is planned).
_HAS = ("list_has_any", "array_has_any", "list_has_all", "array_has_all", "&&", "@>", "<@")

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
    **{name: ((_ONE,), _LIST) for name in (
        "list_distinct", "array_distinct", "list_unique", "array_unique", "list_mode",
        "list_entropy", "list_histogram")},
    # list_has_any(l, l) of one 16.7M-element list: 49 s against a 20 s
    # timeout; list_has_all 104 s (sqlglot writes them as && and @>)
    **{name: ((_TWO,), _PAIR_LIST) for name in (
        "list_intersect", "array_intersect", *_HAS)},
    **{name: ((_TWO, _THREE, _FOUR), _AGGREGATE) for name in (
        "list_aggregate", "array_aggregate", "list_aggr", "array_aggr", "aggregate")},
}
# ... and sqlglot's names of them (a qualified call keeps the name as written)
GUARDED = frozenset(MACROS) | {"jarowinkler_similarity", "regexp_split", "array_overlaps",
                                "array_contains_all"}
# && is also GEOMETRY's bounding-box test, which the list guard cannot bind:
# typed overloads, which DuckDB prefers, keep it as it was.
_TYPED = {"&&": ('(a GEOMETRY, b GEOMETRY) AS system.main."&&"(a, b)',
                 '(a VARCHAR, b GEOMETRY) AS system.main."&&"(a::GEOMETRY, b)',
                 '(a GEOMETRY, b VARCHAR) AS system.main."&&"(a, b::GEOMETRY)')}


def _macro(name: str) -> str:
    params, (guard, refusal) = MACROS[name]
    quoted = name if name.isidentifier() else f'"{name}"'
    label = f"{name}()" if name.isidentifier() else f"the {name} operator"
    overloads = list(_TYPED.get(name, ()))
    for names in params:
        own = ", ".join(("a" if name in _HAS else "if(random() >= 0, a, NULL)", *names[1:]))
        overloads.append(f"({', '.join(names)}) AS CASE WHEN {guard} THEN "
                         f"error('{label} {refusal}') ELSE system.main.{quoted}({own}) END")
    return f"CREATE OR REPLACE MACRO {quoted}" + ", ".join(overloads)


def define(con: duckdb.DuckDBPyConnection) -> None:
    """The guarding macros, in `con`'s database (every cursor sees them);
    before its configuration is locked."""
    con.create_function(VECTOR_OVER, _vector_over, ["BIGINT", "BIGINT"], "BOOLEAN",
                        type=PythonUDFType.ARROW, null_handling=FunctionNullHandling.SPECIAL,
                        side_effects=True)
    for name in MACROS:
        con.execute(_macro(name))


# What gives another value each time it is computed: a guard's argument is
# computed twice, measured and then run (list_distinct(CASE WHEN random() <
# 0.5 THEN l ELSE [] END) was measured as [] and hashed a list of 2,000,000
# one try in four; a lambda's list likewise, lambda_guard.py).
VOLATILE = frozenset({"rand", "random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7",
                      "setseed", "nextval", "currval"})


def volatile(node: exp.Expr) -> str | None:
    """The first thing in `node` whose value changes each time it is computed."""
    for n in node.walk():
        if isinstance(n, exp.TableSample):
            return "a sample (USING SAMPLE, TABLESAMPLE)"
        if isinstance(n, exp.Func) and (name := function_name(n)) in VOLATILE:
            return f"{name}()"
    return None


def check_call(node: exp.Func, name: str) -> None:
    """A guarded function called by a qualified name (`system.main.
    jaro_similarity(...)`) would reach DuckDB's own, unguarded: refused. A
    method call on a value (`'a,b'.split(',')`, `(s || x).split(',')`) is
    DuckDB's `split('a,b', ',')`, the guard's: it runs. Only names can be a
    schema, so only a call after names is taken for a qualified one (a
    column's `s.split(',')` among them: written `split(s, ',')`, it runs).
    An argument computed from random() & co. (VOLATILE): refused."""
    if name not in GUARDED:
        return
    parent = node.parent
    receiver = parent.this if isinstance(parent, exp.Dot) and parent.expression is node else None
    if receiver is not None and _names_only(receiver):
        raise InvalidArgument(f"call {name}() by its name alone, not qualified by a schema")
    found = volatile(receiver) if receiver is not None else None
    for arg in node.iter_expressions():
        found = found or volatile(arg)
    if found is not None:
        raise InvalidArgument(
            f"{name}() of a value computed from {found}: its guard measures the value before "
            "the call runs, so it must be the same value both times; compute it in a "
            "subquery's column and call it on that column")


def _names_only(node: exp.Expression) -> bool:
    """An identifier, or names joined by dots: what could name a schema."""
    if isinstance(node, exp.Dot):
        return _names_only(node.this) and _names_only(node.expression)
    return isinstance(node, exp.Identifier | exp.Column | exp.Var)


FRAME_MAX = 1 << 10  # rows of a moving frame a hashing window function may span
# mad's work a row grows with its frame too (over ORDER BY x: 1M rows 41 s,
# 6M rows 140 s, against a 20 s timeout); median and quantiles' does not.
HASHING_WINDOWS = frozenset({"mode", "histogram", "entropy", "mad"})
# ... and one whose window states are allocated whole for every row of any
# window: approx_top_k(x, 3000) OVER (ORDER BY x) over 2,000 rows took the
# server to 3.7 GB (~600 bytes a row for each of k; OVER (PARTITION BY ...)
# as much), where the aggregate takes ~nothing.
NO_WINDOW = frozenset({"approx_top_k"})


def check_window(node: exp.Window) -> None:
    """INVALID_ARGUMENT for a hashing aggregate (HASHING_WINDOWS) over a
    moving frame: only `OVER (PARTITION BY ...)` (one aggregate a partition)
    or a ROWS frame of literal offsets spanning at most FRAME_MAX rows."""
    func = node.this
    while isinstance(func, exp.Filter | exp.WithinGroup | exp.IgnoreNulls | exp.RespectNulls):
        func = func.this
    name = function_name(func) if isinstance(func, exp.Func) else ""
    if name in NO_WINDOW:
        raise InvalidArgument(
            f"{name}() is not a window function here: DuckDB allocates its whole state for "
            "every row of a window, outside its memory limit (as an aggregate, with GROUP BY, "
            "it runs)")
    if name not in HASHING_WINDOWS:
        return
    spec = node.args.get("spec")
    if node.args.get("alias") is None and (
            spec is None and not node.args.get("order") or _rows_span(spec) <= FRAME_MAX):
        return
    raise InvalidArgument(
        f"{name}() as a window function takes a whole partition (OVER (PARTITION BY ...)) "
        f"or a ROWS frame of at most {FRAME_MAX:,} rows written in its OVER clause: over a "
        "longer or ordered frame DuckDB merges a hash table of the frame for every row, "
        "outside its memory limit, and cannot stop midway")


def _rows_span(spec: exp.WindowSpec | None) -> float:
    """How many rows a ROWS frame spans, by its literal offsets (inf: unknown)."""
    if spec is None or str(spec.args.get("kind") or "").upper() != "ROWS":
        return float("inf")
    ends = []
    for bound, side in (("start", "start_side"), ("end", "end_side")):
        value, where = spec.args.get(bound), str(spec.args.get(side) or "").upper()
        if value is None and bound == "end" or str(value).upper() == "CURRENT ROW":
            ends.append(0)
        elif isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
            ends.append(-int(value.this) if where == "PRECEDING" else int(value.this))
        else:
            return float("inf")  # UNBOUNDED, an expression
    return ends[1] - ends[0]
