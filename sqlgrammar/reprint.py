"""Where sqlglot's reprint of a statement would mean something else to DuckDB.

Cairn checks each statement with DuckDB's own parser (duckparse.py) but runs
the text sqlglot prints back from its tree (table names rewritten). Where the
two read the same text differently, the statement ran with a meaning the user
never wrote. Found by trying, each against DuckDB itself:

- A JSON key: DuckDB reads the string of `j ->> 'a.b'` (and of json_extract,
  json_extract_string, json_extract_path(_text)) as one key unless it starts
  with `$` (a JSONPath) or `/` (a JSON pointer); sqlglot rewrote it as the path
  `'$.a.b'` (`'x[0]'` as `'$.x[0]'`), so `WHERE j ->> 'a.b' = '1'` deleted the
  rows whose {"a": {"b": 1}} matched. Here the path is kept as written.
- INTERVAL '1 mon': sqlglot reads it as INTERVAL '1' MON, which DuckDB reads
  as INTERVAL '1' (one second) named MON. A unit DuckDB takes only inside the
  string (mon, hr, yrs, min, msec, usec, dec, c, mil, ...) is printed back
  inside it; INTERVAL <number> <such a unit>, which DuckDB cannot run, is
  refused (`check_operators`).
- `->`: DuckDB's `->` (also its lambda arrow) takes everything after it, up to
  the end of the expression, as its right side: `j -> 'x' || 'y'` is
  `j -> ('x' || 'y')`, `j -> 'x' = 'y'` is `j -> ('x' = 'y')`; sqlglot bound
  the arrow tighter. `->>` takes `&`, `|`, `<<` and `>>` to its right
  (`j ->> 'a' & 1` is `j ->> ('a' & 1)`). Those forms are refused with what to
  write: parentheses say which is meant.
- What sqlglot writes itself is parenthesized where DuckDB would group it
  otherwise: json_extract(j, 'x') is written `j -> 'x'` (it was bare in
  `... BETWEEN 0 AND 2`, read `j -> ('x' BETWEEN 0 AND 2)`), `a !~ b` is
  written NOT REGEXP_MATCHES(a, b) (bare before `< c`, read NOT (... < c)).
- `<=>` is DuckDB's cosine distance of two lists; sqlglot made it IS NOT
  DISTINCT FROM. `@` (absolute value) binds otherwise in DuckDB than in
  sqlglot, and sqlglot read `@NULL` as a column "NULL"; `^@` too. All are
  refused with the function to write.
- `x IN [1, NULL]` is list membership to DuckDB (contains([1, NULL], x),
  as `IN ARRAY[..]` and `IN list_value(..)`: a NULL element never makes it
  NULL); sqlglot read it as the SQL list `IN (1, NULL)`, where a NULL makes
  NOT IN NULL (a DELETE ... WHERE x NOT IN [NULL, 1] deleted no row). Read as
  the list here, it is printed back `x IN [1, NULL]` (postfix_ops.py).
- A standalone `!` is DuckDB's postfix factorial and was sqlglot's NOT
  (`k ! IN (1, 2)` ran as NOT IN): refused before sqlglot reads the
  statement (factorial.py; the parser calls `check_bang`).
- The name of an unaliased subquery item is its text as written
  (`name_subqueries`), not sqlglot's (string_agg was LISTAGG).

The patches to sqlglot's DuckDB dialect (its JSON path reading, and how its
generator writes INTERVAL, JSON arrows and NOT) apply to every parse and
print in the process once this module is imported (an UPDATE's or DELETE's
WHERE and SET are printed once, in the SELECT storage/dml.py makes of them).
tests/sqlgrammar/test_reprint.py holds arrows and NOT to DuckDB's own parse
tree and answers; tests/e2e/test_reprint_meaning.py each fix to DuckDB's
answers over the same rows."""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

from . import calls, literals, postfix_ops  # noqa: F401 (patch sqlglot's reading of them)
from .duckparse import serialized
from .errors import SqlInvalid
from .factorial import check_bang
from .prefix_ops import check_prefix_operators
from .splitter import Chunk, absolute
from .uncommented import Uncommented

__all__ = ["KEYWORD_UNITS", "WRITTEN", "check_bang", "check_operators", "name_subqueries"]

_DUCKDB = Dialect.get_or_raise("duckdb")

# The units DuckDB reads as a keyword after INTERVAL 'n' (tried one by one:
# `SELECT INTERVAL '2' <unit>` against `SELECT INTERVAL '2 <unit>'`); any other
# word there is the column's name, so it stays inside the string.
KEYWORD_UNITS = frozenset({
    "YEAR", "YEARS", "MONTH", "MONTHS", "DAY", "DAYS", "HOUR", "HOURS", "MINUTE",
    "MINUTES", "SECOND", "SECONDS", "MILLISECOND", "MILLISECONDS", "MICROSECOND",
    "MICROSECONDS", "WEEK", "WEEKS", "QUARTER", "QUARTERS", "DECADE", "DECADES",
    "CENTURY", "CENTURIES", "MILLENNIUM", "MILLENNIA",
})


def _keep_json_path(self: Any, path: exp.Expression | None) -> exp.Expression | None:
    """A JSON path or key as written: DuckDB decides what it means."""
    return path


_GENERATOR = _DUCKDB.generator_class
_interval_sql = _GENERATOR.interval_sql


def _interval(self: Any, expression: exp.Interval) -> str:
    """INTERVAL '1 mon' as written. sqlglot splits a string of one number and
    one unit into a value and a unit; the value it made has no position (one
    the user wrote as `'1' mon` has), so only a split one is joined again."""
    this, unit = expression.this, expression.args.get("unit")
    if (isinstance(this, exp.Literal) and this.is_string and "start" not in this.meta
            and isinstance(unit, exp.Var) and unit.name.upper() not in KEYWORD_UNITS):
        text = f"{this.name} {unit.name.lower()}"
        return f"INTERVAL {self.sql(exp.Literal.string(text))}"
    return str(_interval_sql(self, expression))


# Where sqlglot writes an arrow (json_extract(j, 'x') too) without parentheses
# and DuckDB would read the operator around it into the arrow's right side
# (`json_extract(j, 'x') BETWEEN 0 AND 2` as `j -> 'x' BETWEEN 0 AND 2`, `-` before it).
_WRAP = (exp.Binary, exp.Bracket, exp.In, exp.Unary, exp.Between, exp.AtTimeZone, exp.Dot)
_arrow_sql: dict[type, Any] = {
    exp.JSONExtract: _GENERATOR.TRANSFORMS[exp.JSONExtract],
    exp.JSONExtractScalar: getattr(_GENERATOR, "jsonextractscalar_sql")}  # noqa: B009


def _arrow_wrapped(self: Any, expression: exp.Expression) -> str:
    parent = expression.parent
    if isinstance(parent, exp.In) and expression.arg_key == "field":
        # `x IN [1] ->> 'a'` is x IN ([1] ->> 'a'), the list; sqlglot's
        # parentheses would make it the SQL list `x IN (...)` of one value
        expression.parent = None
        try:
            return str(_arrow_sql[type(expression)](self, expression))
        finally:
            expression.parent = parent
    text = str(_arrow_sql[type(expression)](self, expression))
    left_of_arrow = (isinstance(parent, exp.JSONExtract | exp.JSONExtractScalar)
                     and expression.arg_key == "this")  # (j -> 'a') -> 'b' is j -> 'a' -> 'b'
    if (isinstance(parent, _WRAP) and not isinstance(parent, exp.Paren) and not left_of_arrow

            and not (text.startswith("(") and text.endswith(")"))):
        return f"({text})"
    return text


_not_sql = getattr(_GENERATOR, "not_sql")  # noqa: B009


def _not_wrapped(self: Any, expression: exp.Not) -> str:
    """NOT written by sqlglot for `a !~ b` (NOT REGEXP_MATCHES(a, b)) inside a
    comparison is parenthesized: DuckDB reads `NOT x < c` as NOT (x < c),
    and `a !~ b < c` is (a !~ b) < c."""
    text = str(_not_sql(self, expression))
    parent = expression.parent
    if (isinstance(parent, exp.Binary) and not isinstance(parent, exp.Connector)
            and not text.startswith("(")):
        return f"({text})"
    return text


setattr(DuckDB, "to_json_path", _keep_json_path)  # noqa: B010 (a class of sqlglot's)


def _as_written(name: str, build: Any) -> Any:
    """sqlglot's builder of a JSON function, for two arguments only: with more
    it kept the first path and dropped the rest (`json_extract_path_text(j, 'a',
    'b')` ran as `j ->> 'a'`, and a DELETE by it removed other rows); the call
    goes to DuckDB as written, which takes or refuses it."""
    def built(args: list[Any], *rest: Any, **kw: Any) -> Any:
        if len(args) != 2 or name == "JSON_EXTRACT_SCALAR":  # not DuckDB's: its refusal
            return exp.Anonymous(this=name.lower(), expressions=args)
        return build(args, *rest, **kw)
    return built


for _name in ("JSON_EXTRACT_PATH_TEXT", "JSON_EXTRACT_PATH", "JSON_EXTRACT", "JSON_EXTRACT_STRING",
              "JSON_EXTRACT_SCALAR"):
    DuckDB.Parser.FUNCTIONS[_name] = _as_written(_name, DuckDB.Parser.FUNCTIONS[_name])
_GENERATOR.TRANSFORMS[exp.Not] = _not_wrapped
_GENERATOR.TRANSFORMS[exp.Interval] = _interval
_GENERATOR.TRANSFORMS[exp.JSONExtract] = _arrow_wrapped
_GENERATOR.TRANSFORMS[exp.JSONExtractScalar] = _arrow_wrapped

# INTERVAL <number> (a word follows, else it is no bare unit): tokens are read then.
_BARE_INTERVAL = re.compile(r"(?i)\binterval\s*[-+]?\s*[0-9]")
# `->>` takes these to its right in DuckDB (sqlglot: to its left).
_BITWISE = (exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseLeftShift, exp.BitwiseRightShift,
            exp.BitwiseXor)
# Operators after whose last operand another operator's text may follow.
_OPERATORS = (exp.Binary, exp.Between, exp.In, exp.AtTimeZone, exp.Unary)
_LAST = {"expression", "high"}  # the last operand of a Binary, of a Between


def _arrow(node: exp.Expr | None) -> bool:
    """An arrow operator as written (json_extract(...) has no only_json_types)."""
    return isinstance(node, exp.JSONExtract | exp.JSONExtractScalar) \
        and "only_json_types" in node.args


def check_operators(chunk: Chunk, src: Uncommented, expression: exp.Expression) -> None:
    """SqlInvalid for a form DuckDB and sqlglot read differently (see above);
    `src`: the statement as the parsers read it, positions mapped back."""
    source = src.text
    check_prefix_operators(chunk, source, expression)  # `~ a ^ b`, a prefix `+`
    if "->" in source:
        for node in expression.find_all(exp.JSONExtract, exp.JSONExtractScalar):
            if _arrow(node):
                _check_arrow(chunk, node)
    if "@" in source or "<=>" in source or _BARE_INTERVAL.search(source) is not None:
        _check_tokens(chunk, src)


def _followed(node: exp.Expr) -> exp.Expr | None:
    """The operator whose text comes right after `node`'s (unparenthesized),
    as sqlglot read it: `node` is its left operand, or the last operand of
    operators that are."""
    cur = node
    while isinstance(cur.parent, _OPERATORS):
        parent = cur.parent
        if isinstance(parent, exp.Paren):
            if not (isinstance(parent.parent, exp.Predicate | exp.Not)
                    and isinstance(cur, exp.Predicate | exp.Connector | exp.Not)):
                return None
            # sqlglot's own parentheses around the operand of a predicate
            # (`a < j -> 'x' IS NULL` is `(a < (j -> 'x')) IS NULL` to it): read
            # through, as if written (refusing some forms a user parenthesized)
            cur = parent
            continue
        if cur.arg_key == "this" and not isinstance(parent, exp.Unary):
            return parent  # `cur OP ...`
        if cur.arg_key not in _LAST and not isinstance(parent, exp.Unary):
            return None  # `x BETWEEN cur AND ...`, `x IN (cur)`: closed
        cur = parent
    return None


# DuckDB binds these tighter than an arrow after them: `a @> j -> 'x'` is
# `(a @> j) -> 'x'` (sqlglot: `a @> (j -> 'x')`).
_CONTAINS = (exp.ArrayContainsAll, exp.ArrayContainedBy, exp.ArrayOverlaps)


def _check_arrow(chunk: Chunk, node: exp.Expr) -> None:
    single = isinstance(node, exp.JSONExtract)
    op = "->" if single else "->>"
    parent = node.parent
    if isinstance(parent, _CONTAINS) and node.arg_key == "expression":
        _refuse(chunk, node, op, "an operator @> <@ && before it, which DuckDB reads as part "
                f"of the left side of {op} (`a @> j {op} 'x'` is `(a @> j) {op} 'x'`)")
    right = node.expression
    if not single and isinstance(right, exp.Distance):
        _refuse(chunk, node, op, f"an operator <-> after it, which DuckDB reads as taking "
                f"`j {op} 'x'` as its left side (`j {op} 'x' <-> y` is `(j {op} 'x') <-> y`)")
    after = _followed(node)
    if after is None or _arrow(after) and node.arg_key == "this":
        return  # j -> 'x' -> 'y' is (j -> 'x') -> 'y' to both
    if not single and not isinstance(after, _BITWISE):
        return  # ->> is read alike but for & | << >> after it
    reads, other = (("everything after -> (up to the end of the expression)", "||") if single
                    else ("the & | << >> operators after ->>", "&"))
    _refuse(chunk, node, op, f"another operator after it, which DuckDB reads as part of the "
            f"right side of {op} ({reads}: `j {op} 'x' {other} 'y'` is "
            f"`j {op} ('x' {other} 'y')`)")


def _refuse(chunk: Chunk, node: exp.Expr, op: str, why: str) -> None:
    left = node.this.sql(dialect="duckdb")
    shown = left if len(left) <= 40 else left[:37] + "..."
    raise SqlInvalid(
        f"`{shown} {op} ...` has {why}; write parentheses to say which is meant, "
        f"e.g. `(j {op} 'x')`", chunk.line, chunk.column, chunk.index)


def _check_tokens(chunk: Chunk, src: Uncommented) -> None:
    tokens = _DUCKDB.tokenize(src.text)
    for i, token in enumerate(tokens):
        message = None
        if token.token_type == TokenType.NULLSAFE_EQ:
            message = ("`<=>` is DuckDB's cosine distance, which Cairn cannot run as written: "
                       "write list_cosine_distance(a, b) or array_cosine_distance(a, b) "
                       "(or IS NOT DISTINCT FROM for a comparison that treats NULLs as equal)")
        elif token.token_type == TokenType.PARAMETER and token.text == "@":
            message = "the prefix operator @ (absolute value) is not supported: write abs(x)"
        elif token.token_type == TokenType.CARET_AT:
            message = "the operator ^@ is not supported: write starts_with(a, b)"
        elif token.token_type == TokenType.INTERVAL:
            message = _bare_interval(tokens[i + 1:i + 4])
        if message is not None:
            line, column = absolute(chunk, *src.position(token.line,
                                                         token.col - len(token.text) + 1))
            raise SqlInvalid(f"{message} (at line {line}, column {column})",
                             line, column, chunk.index)


def _bare_interval(after: list[Any]) -> str | None:
    """INTERVAL <number> <word>: DuckDB reads `INTERVAL 1 mon` as INTERVAL 1
    (an error) named mon, sqlglot as one month."""
    sign = ""
    if after and after[0].token_type in (TokenType.DASH, TokenType.PLUS):
        sign, after = after[0].text, after[1:]
    if (len(after) >= 2 and after[0].token_type == TokenType.NUMBER
            and after[1].token_type == TokenType.VAR
            and after[1].text.upper() not in KEYWORD_UNITS):
        value, unit = sign + after[0].text, after[1].text
        return (f"INTERVAL {value} {unit}: DuckDB takes the unit {unit} only inside the "
                f"string: write INTERVAL '{value} {unit}'")
    return None


# The meta key of a SELECT item's text as written (storage/scopes.py names an
# unaliased subquery item by it; sqlglot's reprint spelled `string_agg` LISTAGG).
WRITTEN = "written"


def name_subqueries(source: str, expression: exp.Expression) -> None:
    """Mark each unaliased subquery item of a SELECT that reads a table
    (`(SELECT string_agg(v, ',') FROM ns.t)`, `EXISTS (...)`) with its text
    as written, where DuckDB's parse of `source` says it stands."""
    if not isinstance(expression, exp.Select):
        return
    items = expression.expressions
    wanted = [i for i, item in enumerate(items) if isinstance(item, exp.Subquery | exp.Exists)
              and not item.alias and item.find(exp.Table) is not None]
    if not wanted:
        return
    tree = serialized(source)
    try:
        listed = tree["statements"][0]["node"]["select_list"] if tree else []
    except (KeyError, IndexError, TypeError):
        return
    if len(listed) != len(items):
        return
    raw = source.encode("utf-8", "replace")
    for i in wanted:
        found = listed[i]
        start, length = found.get("query_location"), found.get("query_location_length")
        if found.get("class") != "SUBQUERY" or not isinstance(start, int) or not length:
            continue
        text = raw[start:start + length].decode("utf-8", "replace")
        opens = "(" if isinstance(items[i], exp.Subquery) else "exists"
        if text.lower().startswith(opens) and text.endswith(")"):
            items[i].meta[WRITTEN] = text
