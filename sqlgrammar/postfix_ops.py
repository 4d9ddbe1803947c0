"""Operators after a postfix predicate, and the right side of `IN [..]`, read
as DuckDB reads them (a patch to sqlglot's DuckDB parser and printer).

Found by trying, each against DuckDB itself (tests/e2e/test_operator_oracle.py):

- `a IS [NOT] NULL` (TRUE, FALSE, UNKNOWN; `a ISNULL`, `a NOTNULL`) ends at
  its keyword to DuckDB, and the operators that bind tighter than IS may
  follow it with the predicate as their left operand: `x IS NULL || 'x'` is
  `(x IS NULL) || 'x'`, 'falsex'. sqlglot read a comparison after it but no
  `||`, `+`, `*`, `^`, ... (a PARSE_ERROR), and read `FALSE IS NOT TRUE || 'x'`
  as `FALSE IS NOT (TRUE || 'x')` (refused before this).
- `x IN [1, 2] || [3]` is `x IN ([1, 2] || [3])` to DuckDB (the list is any
  expression that binds tighter than IN); sqlglot read the list alone and
  stopped at `||` (a PARSE_ERROR).
- A prefix `-` or `~` was printed against an operand that starts with an
  operator sign: `- ~2` as `-~2`, which DuckDB reads as one operator `-~`
  (no such function), `~ ~2` as `~~2` (LIKE). A blank is printed between."""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

__all__: list[str] = []

_PARSER = DuckDB.Parser
_GENERATOR = Dialect.get_or_raise("duckdb").generator_class
_in_sql = _PARSER.RANGE_PARSERS[TokenType.IN]
_is_sql = _PARSER.RANGE_PARSERS[TokenType.IS]
_BOOLEANS = {TokenType.TRUE: True, TokenType.FALSE: False}


def _tighter(parser: Any, this: exp.Expression) -> exp.Expression:
    """`this` (a whole predicate) as the first left operand of the operators
    that bind tighter than IS: sqlglot's loops of _parse_exponent, _parse_factor,
    _parse_term and _parse_bitwise, tightest first, each seeded with it."""
    start = parser._index
    this = parser.expression(exp.Paren(this=this))
    while parser._match_set(parser.EXPONENT):
        this = parser.expression(parser.EXPONENT[parser._prev.token_type](
            this=this, expression=parser._parse_unary()))
    while parser._match_set(parser.FACTOR):
        this = parser.expression(parser.FACTOR[parser._prev.token_type](
            this=this, expression=parser._parse_factor_operand()))
    while parser._match_set(parser.TERM):
        this = parser.expression(parser.TERM[parser._prev.token_type](
            this=this, expression=parser._parse_factor()))
    this = _bitwise(parser, this)
    return this if parser._index != start else this.this


def _bitwise(parser: Any, this: exp.Expression) -> exp.Expression:
    """The loop of sqlglot's _parse_bitwise (`||`, `&`, `|`, `<<`, `>>`, `??`,
    `->>`), with `this` as its first left operand."""
    while True:
        if parser._match_set(parser.BITWISE):
            this = parser.expression(parser.BITWISE[parser._prev.token_type](
                this=this, expression=parser._parse_term()))
        elif parser._match(TokenType.DPIPE):
            this = parser.expression(exp.DPipe(this=this, expression=parser._parse_term(),
                                               safe=not parser.dialect.STRICT_STRING_CONCAT))
        elif parser._match(TokenType.DQMARK):
            this = parser.expression(exp.Coalesce(this=this, expressions=[parser._parse_term()]))
        elif parser._match_pair(TokenType.LT, TokenType.LT):
            this = parser.expression(exp.BitwiseLeftShift(this=this,
                                                          expression=parser._parse_term()))
        elif parser._match_pair(TokenType.GT, TokenType.GT):
            this = parser.expression(exp.BitwiseRightShift(this=this,
                                                           expression=parser._parse_term()))
        elif parser.JSON_OPERATORS and parser._match_set(parser.JSON_OPERATORS):
            this = parser.JSON_OPERATORS[parser._prev.token_type](parser, this,
                                                                   parser._parse_term())
        else:
            return this


def _is(parser: Any, this: exp.Expression | None) -> exp.Expression | None:
    """`a IS [NOT] TRUE` (FALSE) ends at its keyword, and `a IS [NOT] NULL`
    too; operators may follow either. Anything else after IS is sqlglot's."""
    index = parser._index
    negate = parser._match(TokenType.NOT)
    token = parser._curr.token_type if parser._curr else None
    if token in _BOOLEANS:
        parser._advance()
        test = parser._build_predicate(exp.Is, this, exp.Boolean(this=_BOOLEANS[token]))
        test = parser.expression(exp.Not(this=test)) if negate else test
        return _tighter(parser, parser._parse_column_ops(test))
    parser._retreat(index)
    test = _is_sql(parser, this)
    if token in (TokenType.NULL, TokenType.UNKNOWN) and isinstance(test, exp.Expression):
        return _tighter(parser, test)
    return test  # type: ignore[no-any-return]


def _isnull(parser: Any, this: exp.Expression | None) -> exp.Expression:
    test = parser._build_predicate(exp.Is, this, exp.Null())
    return _tighter(parser, parser._parse_column_ops(test))


def _notnull(parser: Any, this: exp.Expression | None) -> exp.Expression:
    test = parser._build_predicate(exp.Is, this, exp.Null())
    test = parser.expression(exp.Not(this=test))
    return _tighter(parser, parser._parse_column_ops(test))


def _list_in(parser: Any, this: exp.Expression | None) -> Any:
    """`x IN [..] <op> ...` as the list expression DuckDB reads (sqlglot's IN
    of a list expression, as for `x IN ARRAY[..]`), not the SQL list `IN (..)`."""
    if parser._curr is not None and parser._curr.token_type == TokenType.L_BRACKET:
        return parser.expression(exp.In(this=this, field=parser._parse_bitwise()))
    return _in_sql(parser, this)


_SIGNS = frozenset("+-*/<>=~!@#%^&|`?")


def _spaced(sign: str, original: Any) -> Any:
    def printed(self: Any, expression: exp.Expression) -> str:
        text = str(original(self, expression))
        if text.startswith(sign) and text[1:2] in _SIGNS:
            return f"{sign} {text[1:]}"
        return text
    return printed


def _in(self: Any, expression: exp.In) -> str:
    """`x IN <list expression>` as written, but where the list's text starts
    with a parenthesis (`x IN [1] ->> 'a' || 'b'`, whose arrow sqlglot wraps):
    that would be the SQL list `x IN (...)`, so it is written as DuckDB's own
    reading of the form, contains(list, x)."""
    field = expression.args.get("field")
    if isinstance(field, exp.Expression) and str(self.sql(field)).startswith("("):
        return f"contains({self.sql(field)}, {self.sql(expression, 'this')})"
    return str(_in_printed(self, expression))


_in_printed = _GENERATOR.in_sql
_PARSER.RANGE_PARSERS = {**_PARSER.RANGE_PARSERS, TokenType.IS: _is, TokenType.IN: _list_in,
                         TokenType.ISNULL: _isnull, TokenType.NOTNULL: _notnull}
_GENERATOR.TRANSFORMS[exp.In] = _in
_GENERATOR.TRANSFORMS[exp.Neg] = _spaced("-", _GENERATOR.neg_sql)
_GENERATOR.TRANSFORMS[exp.BitwiseNot] = _spaced("~", _GENERATOR.bitwisenot_sql)
