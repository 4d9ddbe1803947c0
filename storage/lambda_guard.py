"""The guards of unstoppable.py, kept inside a lambda.

A guarded call (string_split, list_distinct, jaro_similarity, ...: see
unstoppable.py) inside a lambda runs on the list's elements, 2,048 at a
time: its guard sees each batch within its bounds, but DuckDB keeps the
results of all the batches of one vector of rows until it is done with
them, and hears no interrupt in between. `list_transform(l, lambda x:
string_split(x, ''))` over one row holding 4,096 texts of 8 KiB took the
server to 1.49 GB under a 1 GB limit and ran 4-6 s, no interrupt heard.

So before a query goes to DuckDB, the list a lambda runs over
(list_transform / array_transform / list_apply / array_apply, list_filter /
array_filter / filter, and `[... for x in l if ...]`) is wrapped in a guard
when its body calls a guarded function: per row, what the calls would take
over all its elements together (bytes of the texts split, elements of the
lists hashed, characters multiplied of the strings compared: the calls'
arguments measured on every element, by a list_transform of the same
lambda that builds numbers only) passes the same bounds as one row of the
call itself, free up to the row's bound and the longer rows of one vector
together up to the vector's (counted by LAMBDA_OVER, which sees the whole
vector). A lambda inside a lambda counts for the outer one too. Its
arguments' own guarded calls are measured first: the measure of
`list_distinct(string_split(x, ','))` splits only once the split's total has
passed. A guarded call in list_reduce's lambda (its accumulator is known only
by running it) or in a method call's lambda (`l.list_transform(...)`) is
refused."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType
from sqlglot import exp

from catalog.errors import InvalidArgument

from .names import function_name
from .unstoppable import (
    GUARDED,
    LIST_MAX,
    LIST_VECTOR_MAX,
    PAIR_MAX,
    SPLIT_MAX,
    SPLIT_VECTOR_MAX,
    VECTOR,
    VOLATILE,
    volatile,
)

LAMBDA_OVER = "__internal_cairn_lambda_over"  # a name sandbox denies to queries

# The functions whose lambda runs once on each element of their first argument.
EACH = frozenset({"transform", "list_transform", "array_transform", "list_apply", "array_apply",
                  "apply", "arrayfilter", "list_filter", "array_filter", "filter"})
_SPLITS = frozenset({"split", "string_split", "str_split", "string_to_array", "regexp_split",
                     "string_split_regex", "str_split_regex", "regexp_split_to_array",
                     "regexp_extract_all"})
_PAIRS = frozenset({"jaro_similarity", "jaro_winkler_similarity", "jarowinkler_similarity"})
_TWO_LISTS = frozenset({"list_intersect", "array_intersect", "list_has_any", "array_has_any",
                        "list_has_all", "array_has_all", "array_overlaps", "array_contains_all",
                        "array_contained_by"})
GUARDED_HERE = GUARDED | {"array_contained_by"}
# kind: (a row's free bound, the vector's bound, what is counted)
BOUNDS = {
    "split": (SPLIT_MAX, SPLIT_VECTOR_MAX, "bytes of text split"),
    "list": (LIST_MAX, LIST_VECTOR_MAX, "elements of lists hashed"),
    # one pair of PAIR_MAX a row, a vector of them (~0.5 s) together
    "pair": (PAIR_MAX, PAIR_MAX * VECTOR, "characters of strings compared, multiplied"),
}


def _over(size: pa.Array, free: pa.Array, most: pa.Array) -> pa.Array:
    """Per row: its size past `most`, or past `free` and the vector's sizes
    past `free` together past `most`."""
    size = pc.fill_null(size, 0.0)
    longer = pc.if_else(pc.greater(size, free), size, 0.0)
    return pc.or_(pc.greater(size, most), pc.greater(pc.cumulative_sum(longer), most))


def define(con: duckdb.DuckDBPyConnection) -> None:
    con.create_function(LAMBDA_OVER, _over, ["DOUBLE", "DOUBLE", "DOUBLE"], "BOOLEAN",
                        type=PythonUDFType.ARROW, null_handling=FunctionNullHandling.SPECIAL,
                        side_effects=True)


def _args(node: exp.Func) -> list[exp.Expr]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    out: list[exp.Expr] = []
    for key in node.arg_types:
        value = node.args.get(key)
        out += [v for v in (value if isinstance(value, list) else [value])
                if isinstance(v, exp.Expr)]
    return out


def _call_args(node: exp.Func) -> list[exp.Expr]:
    """A call's arguments, a method call's value first (`(x || '').split('')`
    is split(x || '', ''); measured by its written arguments alone it counted
    1 an element, and 1,100 texts of 8 KiB split in one row took 880 MB)."""
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        return [parent.this, *_args(node)]
    return _args(node)


def _size(node: exp.Func, name: str) -> tuple[str, exp.Expr] | None:
    """What the guarded call `node` takes, as an expression on its arguments:
    at least 1 (a call on an empty text or list still builds its result: a
    list of 4,194,304 empty texts split took 0.3 s and ~200 MB). Measured on
    every element, where the lambda may call it on some only (`[string_split(
    x::INT::VARCHAR, ',') for x in l if x <> 'a']`, a CASE): an argument that
    fails on an element counts 1 (TRY), not the query's error (where it does
    call it, the call fails as in DuckDB). DuckDB refuses TRY around a
    volatile function, a guard's macro among them (random(), VECTOR_OVER):
    such a measure is left bare."""
    measured = _measure(node, name)
    if measured is None:
        return None
    kind, size = measured
    if not any(isinstance(n, exp.Func) and function_name(n) in VOLATILE | GUARDED_HERE
               for n in size.walk()):
        size = exp.func("try", size)
    return kind, exp.func("greatest", size, exp.Literal.number(1))


def _measure(node: exp.Func, name: str) -> tuple[str, exp.Expr] | None:
    args = [a.copy() for a in _call_args(node)]
    if not args:
        return None
    if name in _SPLITS:
        return "split", exp.func("strlen", exp.cast(args[0], "VARCHAR"))
    if name in _PAIRS and len(args) > 1:
        return "pair", exp.Mul(this=exp.func("length", exp.cast(args[0], "VARCHAR")),
                               expression=exp.func("length", exp.cast(args[1], "VARCHAR")))
    if name in _TWO_LISTS and len(args) > 1:
        return "list", exp.Add(this=exp.func("len", args[0]), expression=exp.func("len", args[1]))
    return "list", exp.func("len", args[0])


def _scope(node: exp.Expr) -> tuple[exp.Expr, list[exp.Identifier]] | None:
    """The list a lambda (or comprehension) runs over and its parameters."""
    if isinstance(node, exp.Comprehension):
        params = [p for p in (node.args.get("expression"), node.args.get("position")) if p]
        return node.args["iterator"], [exp.to_identifier(p.name) for p in params]
    call = node.parent
    assert isinstance(node, exp.Lambda)
    if not isinstance(call, exp.Func) or function_name(call) not in EACH \
            or isinstance(call.parent, exp.Dot) and call.parent.expression is call:
        return None
    first = _args(call)[0]
    return (None if first is node else first), list(node.expressions)  # type: ignore[return-value]


def _each(lst: exp.Expr, params: list[exp.Identifier], size: exp.Expr) -> exp.Expr:
    """The sum over `lst`'s elements of `size` (0 for none)."""
    lam = exp.Lambda(this=exp.cast(size, "DOUBLE"), expressions=[p.copy() for p in params])
    total = exp.func("list_sum", exp.Anonymous(this="list_transform", expressions=[lst.copy(), lam]))
    return exp.func("coalesce", total, exp.Literal.number(0))


def _guarded_calls(bodies: list[exp.Expr]) -> list[tuple[exp.Func, str]]:
    found = []
    for body in bodies:
        for node in body.walk():
            if isinstance(node, exp.Func) and (name := function_name(node)) in GUARDED_HERE:
                found.append((node, name))
    return found[::-1]  # a call's arguments' calls before it


def _label(node: exp.Expr) -> str:
    if isinstance(node, exp.Comprehension):
        return "a list comprehension ([... for x in l])"
    call = node.parent
    return f"{function_name(call)}()'s lambda" if isinstance(call, exp.Func) else "a lambda"


def _keep_name(node: exp.Expr) -> None:
    """Name the SELECT item `node` is in by its text as written, if it has
    no name: DuckDB names it by its text as run, which the guard changes."""
    while node.parent is not None and not isinstance(node.parent, exp.Select):
        node = node.parent
    if node.parent is None or node.arg_key != "expressions" or node.alias \
            or isinstance(node, exp.Alias | exp.Column | exp.Star):
        return
    written = node.meta.get("written")
    name = written if isinstance(written, str) else node.sql(dialect="duckdb")
    alias = exp.Alias(alias=exp.to_identifier(name, quoted=True))
    node.replace(alias)
    alias.set("this", node)


LEVELS = 4  # guarded calls nested in one another's arguments in one lambda
# characters of the lists copied into the measures of one statement (a list is
# copied for every measure: a long list literal under many calls would grow
# the SQL DuckDB parses)
COPIED_MAX = 1 << 20
# lambdas wrapped in one statement: each adds its measures and its refusal's
# text (~600 characters) to what DuckDB binds, which hears no interrupt (2,900
# of `list_transform(['a'], x -> split(x, ','))`, a 130 KB statement: 1.8 MB
# of SQL, 1.2 s to guard, 5.5 s to bind, +500 MB; 1.5 s for DuckDB's macros
# alone): 256 of them ~0.5 s
GUARDED_MAX = 256


class _Copies:
    def __init__(self) -> None:
        self.chars = 0

    def each(self, lst: exp.Expr, params: list[exp.Identifier], size: exp.Expr) -> exp.Expr:
        self.chars += len(lst.sql(dialect="duckdb"))
        if self.chars > COPIED_MAX:
            raise InvalidArgument(
                f"the lists of the lambdas that call string_split & co. come to more than "
                f"{COPIED_MAX:,} characters of SQL (each is measured before the lambda runs): "
                "compute the list once in a subquery and map over its column")
        return _each(lst, params, size)


def _levels(calls: list[tuple[exp.Func, str]]) -> dict[int, int]:
    """Per call (by id): 0 if no guarded call is in its arguments, else one
    more than theirs (`calls` lists arguments' calls first)."""
    level: dict[int, int] = {}
    for call, _ in calls:
        below = [level[id(n)] for arg in _call_args(call) for n in arg.walk() if id(n) in level]
        level[id(call)] = 1 + max(below) if below else 0
    return level


def guard(lambdas: Sequence[exp.Expr]) -> None:
    """Wrap the list of every lambda (or comprehension) of `lambdas`, a
    tree's own in tree order (outer ones first, but those in a lambda's list
    before it: `visit`), that calls a guarded function
    (module docstring); INVALID_ARGUMENT for such a lambda of list_reduce.
    One measure for the calls of one kind and level (the calls in no other
    guarded call's arguments first), checked in that order: a measure that
    runs a guarded call runs it once that call's total has passed."""
    copies = _Copies()
    guarded = [0]
    own = {id(lam) for lam in lambdas}  # not the measures added
    done: set[int] = set()

    def visit(lam: exp.Expr) -> None:
        """`lam` once the lambdas in its list, and in its own lambdas' lists,
        are guarded: a measure copies the list, and a copy of an unguarded
        lambda would run whole as the measure is computed (list_transform(
        list_transform(l, x -> split(x, '')), y -> split(y[1], ',')) split all
        of l so: 825 MB, then refused)."""
        if id(lam) in done or not isinstance(lam, exp.Lambda | exp.Comprehension):
            return
        done.add(id(lam))
        lists = [scope[0] for n in lam.walk() if n is not lam and id(n) in own
                 and (scope := _scope(n)) is not None and scope[0] is not None]
        if (scope := _scope(lam)) is not None and scope[0] is not None:
            lists.insert(0, scope[0])
        for inner in [n for lst in lists for n in lst.walk() if n is not lam and id(n) in own]:
            visit(inner)
        one(lam)

    def one(lam: exp.Expr) -> None:
        bodies = ([lam.this] if isinstance(lam, exp.Lambda)
                  else [n for n in (lam.this, lam.args.get("condition")) if n is not None])
        calls = _guarded_calls(bodies)
        if not calls:
            return
        scope = _scope(lam)
        if scope is None or scope[0] is None:
            raise InvalidArgument(
                f"{calls[0][1]}() is not allowed in {_label(lam)}: DuckDB runs a lambda on all "
                "the elements of a vector of rows at once and cannot stop midway; write it in "
                "list_transform or list_filter (its list is then bounded), or unnest the list")
        lst, params = scope
        guarded[0] += 1
        if guarded[0] > GUARDED_MAX:
            raise InvalidArgument(
                f"at most {GUARDED_MAX} lambdas that call string_split & co. in one statement "
                "(each is measured over its whole list first): split the statement, or unnest "
                "the lists")
        if (found := volatile(lst)) is not None:
            raise InvalidArgument(
                f"{calls[0][1]}() in {_label(lam)} over a list computed from {found}: "
                "the list is measured before the lambda runs, so it must be the same list "
                "both times; compute it in a subquery's column and map over that column")
        levels = _levels(calls)
        if max(levels.values()) >= LEVELS:
            raise InvalidArgument(
                f"{calls[-1][1]}() in {_label(lam)}: at most {LEVELS} of string_split & co. "
                "nested in one another's arguments in one lambda (each is measured over the "
                "whole list first)")
        _keep_name(lam)
        groups: dict[tuple[int, str], tuple[list[str], list[exp.Expr]]] = {}
        for call, name in calls:
            measured = _size(call, name)
            if measured is None:
                continue
            kind, size = measured
            inner = call.parent
            while inner is not None and inner is not lam:  # lambdas between: their elements too
                if isinstance(inner, exp.Lambda | exp.Comprehension):
                    inner_scope = _scope(inner)
                    if inner_scope is None or inner_scope[0] is None:
                        break  # refused where that lambda is reached
                    size = copies.each(inner_scope[0], inner_scope[1], size)
                inner = inner.parent
            names, sizes = groups.setdefault((levels[id(call)], kind), ([], []))
            names += [name] if name not in names else []
            sizes.append(exp.cast(size, "DOUBLE"))
        whens = []
        for (_, kind), (names, sizes) in sorted(groups.items(), key=lambda g: g[0][0]):
            total = sizes[0]
            for more in sizes[1:]:
                total = exp.Add(this=total, expression=more)
            free, most, what = BOUNDS[kind]
            over = exp.Anonymous(this=LAMBDA_OVER, expressions=[
                copies.each(lst, params, total), exp.Literal.number(free),
                exp.Literal.number(most)])
            why = (f"{'(), '.join(names)}() in {_label(lam)} takes up to {free:,} {what} a row, "
                   "over all the list's elements together, and longer rows up to "
                   f"{most:,} together among the {VECTOR:,} rows DuckDB works on at once (a "
                   "vector): DuckDB keeps what the lambda builds for all of them outside its "
                   "memory limit and cannot stop midway (no setting moves this; unnest the "
                   "list, or take fewer rows at once)")
            whens.append(exp.If(this=over, true=exp.func("error", exp.Literal.string(why))))
        if whens:
            case = exp.Case(ifs=whens)
            lst.replace(case)
            case.set("default", lst)  # the node itself: a lambda in it is still guarded

    for lam in lambdas:
        visit(lam)
