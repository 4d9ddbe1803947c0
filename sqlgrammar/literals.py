"""Literals read by sqlglot as DuckDB reads them (a patch to its DuckDB parser).

Found by trying, each against DuckDB itself (tests/e2e/test_literal_meaning.py):

- A typed literal followed by a cast, `T 'x'::U`, is `(T 'x')::U` to DuckDB
  (the literal is one constant, and the cast applies to it). sqlglot read the
  operators after the string first and wrapped the literal's type around them:
  CAST(CAST('x' AS U) AS T), the user's cast turned inside out. `DELETE ...
  WHERE ts < TIMESTAMPTZ '2024-02-05 10:30:00+02'::TIMESTAMP` compared with
  10:30 (the offset dropped, then read as UTC), not 08:30, and removed other
  rows; `TIMESTAMP '...'::DATE` stayed a TIMESTAMP; `DOUBLE '1.5'::INT` was
  2.0. The same for a chain (`T 'x'::U::V`), a subscript (`VARCHAR 'abc'[1]`)
  and any other postfix operator: the literal's type now goes to the string
  alone, and the operators after it to the typed literal.
- `JSON '{"a": 1}'` is a cast to JSON, the text as written; sqlglot made it
  json('{"a": 1}'), which DuckDB writes minified ('{"a":1}').
- `.5` is DECIMAL(1,1) to DuckDB, whose text is '.5' ('x' || .5 is 'x.5');
  sqlglot wrote it back as 0.5, a DECIMAL(2,1) whose text is '0.5', so
  `DELETE ... WHERE s = 'rate ' || .5` deleted the row 'rate 0.5'. It is
  kept as written. (The other spellings sqlglot prints otherwise mean the
  same to DuckDB: `1_000` is the INTEGER 1000 either way.)

Both patch tables of the DuckDB dialect's parser (typed literals, and what
starts an expression), so they apply to every parse in the process once this
module is imported (sqlgrammar/reprint.py imports it), the WHERE an UPDATE or
DELETE prints and parses again too."""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

__all__ = ["typed_literal"]

_PARSER = DuckDB.Parser


def _cast(parser: Any, literal: exp.Expression, data_type: exp.DataType) -> exp.Expression:
    return parser.expression(exp.Cast(this=literal, to=data_type))  # type: ignore[no-any-return]


def typed_literal(parser: Any, this: exp.Expression, data_type: exp.DataType) -> exp.Expression:
    """`T 'x' <ops>` as DuckDB reads it: `(T 'x') <ops>`. sqlglot calls this
    with the string literal and the operators it read after it already applied
    (`this` is CAST('x' AS U) for `T 'x'::U`); the literal is the innermost
    left operand of those, and only it gets the type."""
    literal = this
    while not isinstance(literal, exp.Literal):
        inner = literal.args.get("this")
        if not isinstance(inner, exp.Expression):
            break
        literal = inner
    if literal is this or not isinstance(literal, exp.Literal):
        return _cast(parser, this, data_type)
    parent, key = literal.parent, literal.arg_key
    assert parent is not None and key is not None
    parent.set(key, None)
    typed = _cast(parser, literal, data_type)
    parent.set(key, typed)
    if isinstance(parent, exp.Bracket) and key == "this":
        # sqlglot keeps a subscript 0-based when it knows the operand is a list
        # (and adds DuckDB's 1 back when it prints): it took the operand for a
        # string, now it is `T 'x'`, a list for `INT[] '[1, 2]'[2]`.
        offset = -parser.dialect.INDEX_OFFSET
        parent.set("expressions", exp.apply_index_offset(typed, parent.expressions, offset,
                                                         dialect=parser.dialect))
    return this


def _decimal_point_number(parser: Any, token: Any) -> exp.Expression | None:
    """`.5` as written (sqlglot made it 0.5). Called at a `.` where an
    expression starts; anything but a number after it is left to sqlglot's
    rules as before (nothing read)."""
    if not parser._match(TokenType.NUMBER):
        parser._retreat(parser._index - 1)
        return None
    literal = parser.expression(exp.Literal(this=f".{parser._prev.text}", is_string=False),
                                token)
    # sqlglot's atom reader (which comes here first) applies no `::`, `[1]` or
    # `.f` after a literal: it looked for them after the `.`, not the number.
    following = parser._curr.token_type if parser._curr else None
    if following in parser.COLUMN_OPERATORS or following in parser.COLUMN_POSTFIX_TOKENS \
            or following == TokenType.L_BRACKET:
        return parser._parse_column_ops(literal)  # type: ignore[no-any-return]
    return literal  # type: ignore[no-any-return]


_PARSER.TYPE_LITERAL_PARSERS = dict.fromkeys(exp.DType, typed_literal)
_PARSER.PRIMARY_PARSERS = {**_PARSER.PRIMARY_PARSERS, TokenType.DOT: _decimal_point_number}
