"""Values a query builds from a number: bounded before DuckDB sees them.

DuckDB's memory limit (`[storage] duckdb_memory_limit`) covers what its buffer
manager holds (joins, sorts, aggregates, spilled results), not the strings and
lists a scalar function builds, and no interrupt stops a function halfway
through one value. Measured here under a 1 GB limit: `SELECT range(300000000)`
took 76 s and 15 GB (the query timeout fired and was not heard),
`list_resize([1], 300000000)` 77 s and 13 GB, `lpad('x', 900000000, 'y')` 16 s
and 1.8 GB; `range(1000000000)` would have ended the server. So the functions
whose result's size is a number among their arguments take that number only as
a literal, and within bounds:

- CONSTANT_MAX elements (or bytes) when every argument is a literal: the call
  is a constant, which DuckDB computes once per query;
- ROW_MAX when a column feeds it: it then runs once per row, 2,048 rows to a
  vector, all of them held at once.

Inside a lambda (`list_transform(l, lambda x: ...)`, `[... for x in l]`, any
depth) a call runs once per element, so what it may build is divided among
them: the elements of every enclosing lambda's list, multiplied, times the
call's size stay within ROW_MAX, and a lambda over a list the query does not
spell out (a column, a function's result) may not hold such a call at all.
`list_transform(range(1000), x -> range(1048576))` passed the constant bound
once and built a list of 8 MiB a thousand times (the server was killed).
A string literal of more than LAMBDA_LITERAL bytes in a lambda counts the same
(it is copied once per element). And a statement's calls together stay within
STATEMENT_MAX (a call fed by a column, or building a map, counting
ROW_FACTOR times its size): a SELECT of many `range(1048576)` passed each
bound.

A few functions need memory that grows faster than their arguments, outside
DuckDB's limit: refused whatever their arguments (QUADRATIC).

`range(...)` / `generate_series(...)` in FROM are table functions that stream
rows and are not bounded here (the answer's limits and the query timeout are).
What this cannot see: values grown by composing other functions (`replace`
with a long replacement, concatenations of long values, a lambda that reads a
column or accumulates in `list_reduce`). docs/sql.md, "Values a query builds"."""

from __future__ import annotations

import re
from typing import Literal

from sqlglot import exp

from catalog.errors import InvalidArgument

from .jsondepth import bracket_depth
from .names import function_name

CONSTANT_MAX = 1 << 20  # 1,048,576: elements or bytes of a call on literals only
ROW_MAX = 1 << 16  # 65,536: of a call fed by a column (one value per row)
ROW_FACTOR = CONSTANT_MAX // ROW_MAX  # a call fed by a column counts 16 times its size
STATEMENT_MAX = 4 * CONSTANT_MAX  # all of a statement's calls together
LAMBDA_LITERAL = 256  # bytes of a string literal in a lambda copied freely per element
# DuckDB holds ~900 bytes an entry while it builds a map (map(range(1048576),
# range(1048576)): 975 MB and 8 s; two of them 1.4 GB): a list built for a map
# counts ROW_FACTOR times its size, as one fed by a column does.
_MAPS = (exp.Map, exp.MapFromEntries)

# Working memory past what they are given or return, none of it DuckDB's to
# limit: damerau_levenshtein of two strings of n characters allocates an
# (n+2)^2 matrix of integers (12,000 characters: 1.1 GB past a 1 GB limit;
# 1,048,576 characters, within repeat()'s bound: ~8.8 TB). The other edit
# distances DuckDB has keep two rows (tests/storage/test_sandbox_functions.py).
QUADRATIC = {
    "damerau_levenshtein": "it allocates a matrix of both lengths multiplied (two strings "
                           "of 12,000 characters took 1.1 GB); use levenshtein()",
}

# A structure (JSON) DuckDB builds a type of by recursing, past the query
# timeout (a 6 KB from_json of 1,500 levels: 53 s of CPU, 3,000: minutes).
STRUCTURED = {"from_json", "from_json_strict", "json_transform", "json_transform_strict"}
STRUCTURE_DEPTH = 64

_COUNT_ARG = {"list_resize": 1, "array_resize": 1, "bitstring": 1, "equi_width_bins": 2}
_PRINTF_SPEC = re.compile(r"%%|%[-+ #0']*(\*|\d+)?(?:\.(\*|\d+)?)?")
_FMT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)(\{?)")

# Regular expressions: RE2 expands a counted repetition (`a{1,1000}`) and a
# Unicode class (`\pL`) while it parses and compiles, uninterrupted, before
# its own size limit ("pattern too large") applies; the work grows with the
# square of the optional copies: 20 x `a{1,1000}` took 2.7 s, 50 took 17 s,
# 72 KB of them 1.1 GB, 900 KB of `\pL` past 1.4 GB. So a pattern is a string
# written in the query (one from a column is compiled row by row, any size),
# weighed: a byte 1, a `\p` class 30, a repetition its largest count (30
# times that with a `\p` class in the pattern), at most REGEX_MAX in all
# (~0.5 s of RE2's work).
REGEX_MAX = 10_000
REGEX_FUNCTIONS = frozenset({
    "regexp_like", "regexp_matches", "regexp_full_match", "regexp_extract",
    "regexp_extract_all", "regexp_replace", "regexp_split", "regexp_split_to_array",
    "regexp_split_to_table", "string_split_regex", "str_split_regex", "similar to",
})
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_UNICODE_CLASS = re.compile(r"\\[pP]")


def check_pattern(node: exp.Expression | None, name: str) -> None:
    """Raise INVALID_ARGUMENT unless `node` is a regular expression written
    in the query whose weight is within REGEX_MAX."""
    while isinstance(node, exp.Paren | exp.Collate | exp.Cast):
        node = node.this  # psql's \d sends `'^(t)$' COLLATE pg_catalog.default`
    if not (isinstance(node, exp.Literal) and node.is_string):
        raise InvalidArgument(f"{name} takes its regular expression as a string written in "
                              "the query")
    text = str(node.this)
    classes = len(_UNICODE_CLASS.findall(text))
    repeats = sum(max(int(m.group(1)), int(m.group(2) or 0)) for m in _REPEAT.finditer(text))
    weight = len(text.encode()) + 30 * classes + repeats * (30 if classes else 1)
    if weight > REGEX_MAX:
        raise InvalidArgument(
            f"{name}: this regular expression weighs {weight:,}, past {REGEX_MAX:,} (each "
            "byte 1, each \\p class 30, each {n,m} its count): RE2 expands it in memory "
            "outside DuckDB's limit, and cannot be stopped while it does")


class Budget:
    """What one statement's calls may build, together: `check` each function
    node of the tree (any order), and a literal for LAMBDA_LITERAL."""

    def __init__(self) -> None:
        self.used = 0
        self._seen: dict[int, tuple[int | None, bool, bool]] = {}

    def _where(self, node: exp.Expr) -> tuple[int | None, bool, bool]:
        """How many times `node` runs per row (or per query): the elements
        of every lambda around it multiplied, 1 outside any, None if one of
        those lists is not written out in the query; whether it is in a
        lambda at all; and whether in a map's arguments. Remembered by
        node, so a deep tree is climbed once."""
        path: list[exp.Expr] = []
        at: exp.Expr | None = node
        while at is not None and id(at) not in self._seen:
            path.append(at)
            at = at.parent
        copies, inside, mapped = self._seen[id(at)] if at is not None else (1, False, False)
        for child in reversed(path):
            parent = child.parent
            source = False if parent is None else _edge(parent, child)
            if source is not False:
                inside = True
                count = None if copies is None else 1 if source is None else _elements(source)
                copies = None if count is None or copies is None else copies * max(count, 1)
            mapped = mapped or isinstance(parent, _MAPS) or (
                isinstance(parent, exp.Anonymous) and parent.name.lower() == "map_concat")
            self._seen[id(child)] = (copies, inside, mapped)
        return copies, inside, mapped

    def check(self, node: exp.Func, name: str) -> None:
        """Raise INVALID_ARGUMENT if `node` (named `name`) may build a value
        past the bounds, or past what the statement's other calls left."""
        if name in QUADRATIC:
            raise InvalidArgument(f"{name}() is not available: {QUADRATIC[name]}")
        if name in STRUCTURED:
            _check_structure(node, name)
        if name in REGEX_FUNCTIONS:
            args = node.expressions if isinstance(node, exp.Anonymous) else \
                [node.this, node.args.get("expression")]
            shown = "regexp_matches" if name == "regexp_like" else name
            check_pattern(args[1] if len(args) > 1 else None, f"{shown}()")
            return
        if not _builds(node, name):
            return
        name = _shown(node, name)
        copies, inside, mapped = self._where(node)
        size = _size(node, name, copies, inside)
        if size is None:
            return
        if copies is None:
            raise InvalidArgument(
                f"{name}() inside a lambda runs once per element of a list the query does "
                "not write out (a column, a function's result): its size cannot be bounded "
                "there; map over range(n) or a list written in the query")
        self._spend(name, size * copies, copies > 1 or mapped or _bound(node) == ROW_MAX)

    def literal(self, node: exp.Literal) -> None:
        """A long string literal inside a lambda: copied once per element."""
        if not node.is_string or len(node.this) <= LAMBDA_LITERAL // 4:
            return
        size = len(str(node.this).encode())
        if size <= LAMBDA_LITERAL:
            return
        copies, inside, _ = self._where(node)
        if not inside:
            return
        if copies is None:
            raise InvalidArgument(
                f"a string literal of {size:,} bytes inside a lambda over a list the query "
                f"does not write out is copied once per element: at most {LAMBDA_LITERAL} bytes")
        if size * copies > ROW_MAX:
            raise InvalidArgument(
                f"a string literal of {size:,} bytes inside a lambda is copied once per element "
                f"({copies:,} of them): at most {ROW_MAX:,} bytes in all")
        self._spend("a string literal", size * copies, True)

    def _spend(self, name: str, size: int, per_row: bool) -> None:
        self.used += size * (ROW_FACTOR if per_row else 1)
        if self.used > STATEMENT_MAX:
            raise InvalidArgument(
                f"{name}: a statement's lists and strings built from numbers come to at "
                f"most {STATEMENT_MAX:,} bytes or elements in all (one fed by a column, "
                f"inside a lambda or building a map counts {ROW_FACTOR} times its size)")


def _check_structure(node: exp.Func, name: str) -> None:
    """INVALID_ARGUMENT if the structure a from_json-like call is given is not
    a string written in the query ('…', $$…$$, E'…') or nests deeper than
    STRUCTURE_DEPTH."""
    args = list(node.iter_expressions())
    shape = args[1] if len(args) > 1 else None
    while isinstance(shape, exp.Paren | exp.Cast):
        shape = shape.this
    text = shape.this if (isinstance(shape, exp.Literal) and shape.is_string) or isinstance(
        shape, exp.RawString | exp.ByteString) else None
    if not isinstance(text, str):
        raise InvalidArgument(f"{name}() takes its structure as a string written in the query "
                              "(one built by an expression cannot be bounded before it runs)")
    # Type names nest too ('"STRUCT(a STRUCT(…))"' inside the JSON): every bracket counts
    if sum(text.count(c) for c in "[{(") > STRUCTURE_DEPTH and (
            depth := bracket_depth(text)) > STRUCTURE_DEPTH:
        raise InvalidArgument(
            f"{name}(): its structure nests {depth} deep, more than {STRUCTURE_DEPTH}: "
            "DuckDB builds the type by recursing, past the query timeout")


def check(node: exp.Func, name: str) -> None:
    """`Budget().check` of one call alone."""
    Budget().check(node, name)


def _shown(node: exp.Func, name: str) -> str:
    """The name the query wrote (sqlglot calls lpad `pad`, range `generate_series`)."""
    if isinstance(node, exp.Pad):
        return "lpad" if node.args.get("is_left") else "rpad"
    if isinstance(node, exp.GenerateSeries):
        return "range" if node.args.get("is_end_exclusive") else "generate_series"
    return name


def _builds(node: exp.Func, name: str) -> bool:
    """Whether `node` is one of the calls bounded here."""
    return isinstance(node, exp.GenerateSeries | exp.Repeat | exp.Pad | exp.Format) or name in (
        "range", "generate_series", "format", "printf") or name in _COUNT_ARG


def _size(node: exp.Func, name: str, copies: int | None, inside: bool) -> int | None:
    """What `node` may build (bytes or elements) if it is one of the calls
    bounded here, within the bound for one that runs `copies` times (None:
    an unknown number) or in a lambda (`inside`); None if it is none of them."""
    cap = _bound(node) if copies is None or not inside else ROW_MAX // max(copies, 1)
    if isinstance(node, exp.GenerateSeries):
        return _series(node, name, node.args.get("start"), node.args.get("end"),
                       node.args.get("step"), bool(node.args.get("is_end_exclusive")), cap, copies)
    if isinstance(node, exp.Anonymous) and name in ("range", "generate_series"):
        args = list(node.expressions)  # as PostgreSQL's dialect leaves them: (end), (start, end[, step])
        start = args.pop(0) if len(args) > 1 else exp.Literal.number(0)
        return _series(node, name, start, args[0] if args else None,
                       args[1] if len(args) > 1 else None, name == "range", cap, copies)
    if isinstance(node, exp.Repeat):
        return _repeat(node, cap, copies)
    if isinstance(node, exp.Pad):
        return _count(name, node.args.get("expression"), cap, copies)
    if isinstance(node, exp.Format) or name in ("format", "printf"):
        return _format(node, name, cap, copies)
    if name in _COUNT_ARG:
        args = node.expressions
        index = _COUNT_ARG[name]
        count = _count(name, args[index] if len(args) > index else None, cap, copies)
        if name in ("list_resize", "array_resize") and len(args) > 2:
            fill = _weight(args[2])  # the value every new element is a copy of
            if fill is None or count * fill > cap:
                raise InvalidArgument(
                    f"{name}() fills with a value written in the query, at most {cap:,} "
                    f"bytes in all when {_why(cap, copies)}")
            return count * fill
        return count
    return None


def _series(node: exp.Func, name: str, start_node: exp.Expression | None,
            end_node: exp.Expression | None, step_node: exp.Expression | None,
            exclusive: bool, cap: int = CONSTANT_MAX, copies: int | None = 1) -> int | None:
    if isinstance(node.parent, exp.Table):
        return None  # FROM range(n): a table function, its rows streamed
    count = _series_count(start_node, end_node, step_node, exclusive)
    if count is None:
        raise InvalidArgument(
            f"{name}() as a value takes whole numbers written in the query (at most "
            f"{CONSTANT_MAX:,} values); to produce rows from any bounds, use FROM {name}(...)")
    cap = min(cap, CONSTANT_MAX)
    if count > cap:
        raise InvalidArgument(
            f"{name}() as a value builds a list of at most {cap:,} values"
            + (f" when {_why(cap, copies)}" if cap != CONSTANT_MAX else "")
            + f"; to produce more rows, use FROM {name}(...)")
    return count


def _series_count(start_node: exp.Expression | None, end_node: exp.Expression | None,
                  step_node: exp.Expression | None, exclusive: bool) -> int | None:
    start, end = _int(start_node), _int(end_node)
    step = 1 if step_node is None else _int(step_node)
    if start is None or end is None or step is None:
        return None
    span, stride = abs(end - start), max(1, abs(step))
    return -(-span // stride) if exclusive else span // stride + 1


def _repeat(node: exp.Repeat, cap: int, copies: int | None) -> int:
    value = node.this
    size = _weight(value) if isinstance(value, exp.Array) or (
        isinstance(value, exp.Literal) and value.is_string) else None
    if size is None:
        raise InvalidArgument("repeat() repeats a string or list written in the query, "
                              f"into at most {CONSTANT_MAX:,} bytes or elements")
    cap = min(cap, CONSTANT_MAX)
    times = _count("repeat", node.args.get("times"), cap, copies)
    if size * times > cap:
        raise InvalidArgument(f"repeat() builds at most {cap:,} bytes or elements"
                              + (f" when {_why(cap, copies)}" if cap != CONSTANT_MAX else "")
                              + f"; this one would build {size * times:,}")
    return size * times


def _weight(node: exp.Expression) -> int | None:
    """Bytes or elements a literal (or list of literals) holds: a string its
    bytes, anything else one; None if it is not a literal."""
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    if isinstance(node, exp.Array):
        parts = [_weight(v) for v in node.expressions]
        return None if None in parts else sum(p or 0 for p in parts) or 1
    if isinstance(node, exp.Literal) and node.is_string:
        return max(1, len(str(node.this).encode()))
    return 1 if isinstance(node, exp.Literal | exp.Null | exp.Boolean) else None


# Lambdas: how many times a call in one runs.
_SAME_LENGTH = frozenset({
    "transform", "list_transform", "array_transform", "list_apply", "array_apply", "apply",
    "arrayfilter", "list_filter", "array_filter", "filter", "arraysort", "list_sort",
    "array_sort", "list_reverse_sort", "array_reverse_sort", "list_reverse", "array_reverse",
    "list_distinct", "array_distinct", "sortarray",
})


def _edge(parent: exp.Expr, child: exp.Expr) -> exp.Expr | None | Literal[False]:
    """The list `child` runs over once per element if `parent` is a lambda
    (or comprehension) and `child` its body (None: a lambda with no list,
    as invoke()'s, which runs once); False if `child` is no lambda's body."""
    if isinstance(parent, exp.Lambda) and child is parent.this:
        return _mapped(parent)
    if isinstance(parent, exp.Comprehension) and child is not parent.args.get("iterator"):
        return parent.args.get("iterator")
    return False


def _mapped(lam: exp.Lambda) -> exp.Expr | None:
    call = lam.parent
    if not isinstance(call, exp.Func):
        return None
    first = call.this if isinstance(call.this, exp.Expression) else \
        (call.expressions[0] if call.expressions else None)
    return None if first is None or first is lam else first


def _elements(node: exp.Expr, depth: int = 0) -> int | None:
    """How many elements a list written in the query holds (at most); None
    when the query does not say (a column, most functions' results)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if depth > 50:
        return None
    name = ""
    if isinstance(node, exp.Func):
        name = function_name(node)
    if isinstance(node, exp.GenerateSeries):
        return _series_count(node.args.get("start"), node.args.get("end"),
                             node.args.get("step"), bool(node.args.get("is_end_exclusive")))
    if isinstance(node, exp.Anonymous) and name in ("range", "generate_series"):
        args = list(node.expressions)
        start = args.pop(0) if len(args) > 1 else exp.Literal.number(0)
        return _series_count(start, args[0] if args else None,
                             args[1] if len(args) > 1 else None, name == "range")
    if isinstance(node, exp.Array):
        if len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Comprehension):
            iterator = node.expressions[0].args.get("iterator")
            return None if iterator is None else _elements(iterator, depth + 1)
        return len(node.expressions)
    if isinstance(node, exp.Repeat) and isinstance(node.this, exp.Array):
        times = _int(node.args.get("times"))
        return None if times is None else len(node.this.expressions) * max(times, 0)
    if name in ("list_resize", "array_resize") and node.expressions[1:]:
        return _int(node.expressions[1])
    if name in _SAME_LENGTH:
        first = node.this if isinstance(node.this, exp.Expression) else \
            (node.expressions[0] if node.expressions else None)
        return None if first is None else _elements(first, depth + 1)
    return None


def _format(node: exp.Func, name: str, cap: int, copies: int | None) -> int:
    """printf / format: the pattern is a literal, and no width or precision in
    it comes from an argument or passes the bound (each pads the value)."""
    pattern = node.this if isinstance(node, exp.Format) else (node.expressions or [None])[0]
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise InvalidArgument(f"{name}() takes its pattern as a string written in the query")
    bound = cap
    text = pattern.this
    if name == "printf":
        numbers = [n for m in _PRINTF_SPEC.finditer(text) for n in m.groups() if n]
    else:
        numbers = []
        for m in _FMT_FIELD.finditer(text):
            spec, nested = m.group(1), m.group(2)
            if spec is None:
                continue  # an escaped brace
            if nested:
                numbers.append("*")  # `{:>{}}`: a width taken from an argument
            numbers += re.findall(r"\d+", spec.partition(":")[2])
    for n in numbers:
        if n == "*" or int(n) > bound:
            raise InvalidArgument(
                f"{name}() pads to widths written in its pattern, at most {bound:,}"
                + ("" if n == "*" else f" (not {int(n):,})")
                + (f" when {_why(bound, copies)}" if copies != 1 else ""))
    return sum(int(n) for n in numbers)


def _count(name: str, node: exp.Expression | None, bound: int,
           copies: int | None = 1) -> int:
    value = _int(node)
    if value is None:
        raise InvalidArgument(f"{name}() takes its length as a whole number written in the "
                              f"query, at most {bound:,}")
    if value > bound:
        raise InvalidArgument(f"{name}() builds at most {bound:,} bytes or elements "
                              f"(not {value:,}) when {_why(bound, copies)}")
    return max(value, 0)


def _why(bound: int, copies: int | None = 1) -> str:
    if copies is not None and copies > 1:
        return f"it runs in a lambda once per element, {copies:,} times"
    if bound == CONSTANT_MAX:
        return "every argument is a literal"
    return "a column feeds it, or it runs in a lambda"


def _bound(node: exp.Func) -> int:
    """CONSTANT_MAX when every argument is a literal (one value per query), else ROW_MAX."""
    args = [v for v in node.args.values() if isinstance(v, exp.Expression)]
    args += [v for v in node.expressions if isinstance(v, exp.Expression)]
    return CONSTANT_MAX if all(_literal(a) for a in args) else ROW_MAX


def _literal(node: exp.Expression) -> bool:
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    if isinstance(node, exp.Array):
        return all(_literal(v) for v in node.expressions)
    return isinstance(node, exp.Literal | exp.Null | exp.Boolean)


def _int(node: exp.Expression | None) -> int | None:
    """A whole number written in the query (`5`, `-5`, `(5)`, `1e3`); None otherwise."""
    negative = False
    while isinstance(node, exp.Paren | exp.Neg):
        negative ^= isinstance(node, exp.Neg)
        node = node.this
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    try:
        value = int(node.this)
    except ValueError:
        try:
            number = float(node.this)
        except ValueError:
            return None
        if not number.is_integer() or abs(number) >= 2**63:
            return None
        value = int(number)
    return -value if negative else value
