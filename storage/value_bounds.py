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

`range(...)` / `generate_series(...)` in FROM are table functions that stream
rows and are not bounded here (the answer's limits and the query timeout are).
What this cannot see: values grown by composing other functions (`replace`
with a long replacement, concatenations of long values). docs/sql.md,
"Values a query builds"."""

from __future__ import annotations

import re

from sqlglot import exp

from catalog.errors import InvalidArgument

CONSTANT_MAX = 1 << 20  # 1,048,576: elements or bytes of a call on literals only
ROW_MAX = 1 << 16  # 65,536: of a call fed by a column (one value per row)

_COUNT_ARG = {"list_resize": 1, "array_resize": 1, "bitstring": 1, "equi_width_bins": 2}
_PRINTF_SPEC = re.compile(r"%%|%[-+ #0']*(\*|\d+)?(?:\.(\*|\d+)?)?")
_FMT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)(\{?)")


def check(node: exp.Func, name: str) -> None:
    """Raise INVALID_ARGUMENT if `node` (named `name`) may build a value past the bounds."""
    if isinstance(node, exp.GenerateSeries):
        exclusive = bool(node.args.get("is_end_exclusive"))
        _series(node, "range" if exclusive else "generate_series", node.args.get("start"),
                node.args.get("end"), node.args.get("step"), exclusive)
    elif isinstance(node, exp.Anonymous) and name in ("range", "generate_series"):
        args = list(node.expressions)  # as PostgreSQL's dialect leaves them: (end), (start, end[, step])
        start = args.pop(0) if len(args) > 1 else exp.Literal.number(0)
        _series(node, name, start, args[0] if args else None, args[1] if len(args) > 1 else None,
                name == "range")
    elif isinstance(node, exp.Repeat):
        _repeat(node)
    elif isinstance(node, exp.Pad):
        _count("lpad" if node.args.get("is_left") else "rpad", node.args.get("expression"),
               _bound(node))
    elif isinstance(node, exp.Format) or name in ("format", "printf"):
        _format(node, name)
    elif name in _COUNT_ARG:
        args = node.expressions
        index = _COUNT_ARG[name]
        _count(name, args[index] if len(args) > index else None, _bound(node))


def _series(node: exp.Func, name: str, start_node: exp.Expression | None,
            end_node: exp.Expression | None, step_node: exp.Expression | None,
            exclusive: bool) -> None:
    if isinstance(node.parent, exp.Table):
        return  # FROM range(n): a table function, its rows streamed
    start, end = _int(start_node), _int(end_node)
    step = 1 if step_node is None else _int(step_node)
    if start is None or end is None or step is None:
        raise InvalidArgument(
            f"{name}() as a value takes whole numbers written in the query (at most "
            f"{CONSTANT_MAX:,} values); to produce rows from any bounds, use FROM {name}(...)")
    span, stride = abs(end - start), max(1, abs(step))
    count = -(-span // stride) if exclusive else span // stride + 1
    if count > CONSTANT_MAX:
        raise InvalidArgument(
            f"{name}() as a value builds a list of at most {CONSTANT_MAX:,} values; "
            f"to produce more rows, use FROM {name}(...)")


def _repeat(node: exp.Repeat) -> None:
    value = node.this
    if isinstance(value, exp.Literal) and value.is_string:
        size = len(value.this.encode())
    elif isinstance(value, exp.Array) and all(_literal(v) for v in value.expressions):
        size = len(value.expressions)
    else:
        raise InvalidArgument("repeat() repeats a string or list written in the query, "
                              f"into at most {CONSTANT_MAX:,} bytes or elements")
    times = _count("repeat", node.args.get("times"), CONSTANT_MAX)
    if size * times > CONSTANT_MAX:
        raise InvalidArgument(f"repeat() builds at most {CONSTANT_MAX:,} bytes or elements; "
                              f"this one would build {size * times:,}")


def _format(node: exp.Func, name: str) -> None:
    """printf / format: the pattern is a literal, and no width or precision in
    it comes from an argument or passes the bound (each pads the value)."""
    pattern = node.this if isinstance(node, exp.Format) else (node.expressions or [None])[0]
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise InvalidArgument(f"{name}() takes its pattern as a string written in the query")
    bound = _bound(node)
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
                + ("" if n == "*" else f" (not {int(n):,})"))


def _count(name: str, node: exp.Expression | None, bound: int) -> int:
    value = _int(node)
    if value is None:
        raise InvalidArgument(f"{name}() takes its length as a whole number written in the "
                              f"query, at most {bound:,}")
    if value > bound:
        raise InvalidArgument(f"{name}() builds at most {bound:,} bytes or elements "
                              f"(not {value:,}) when {_why(bound)}")
    return max(value, 0)


def _why(bound: int) -> str:
    return "every argument is a literal" if bound == CONSTANT_MAX else "a column feeds it"


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
