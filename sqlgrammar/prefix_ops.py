"""Prefix operators sqlglot reads otherwise than DuckDB (a patch to its DuckDB
parser, and a check that sqlgrammar/reprint.py calls).

Found by trying, each against DuckDB itself (tests/e2e/test_duckdb_refusals.py):

- `~ 2 ^ 3` is `~ (2 ^ 3)` to DuckDB, which has no `~` for the DOUBLE that
  `^` gives, so it refuses the statement; sqlglot read `(~2) ^ 3` and Cairn
  ran it (-27). Refused, saying to write the parentheses.
- A prefix `+` is a function of numbers to DuckDB (`+'1'`, `+TRUE` are
  errors there); sqlglot dropped it, so `+'1' || 'x'` ran as `'1' || 'x'`
  and `+ TRUE AND FALSE` as `TRUE AND FALSE`. Before a number literal it
  means nothing and is kept dropped; anywhere else it is refused.
- `a ^ ~ b`: DuckDB's prefix `~` takes the operators after it (`2 ^ ~ 1 + 1`
  is `2 ^ ~ (1 + 1)`) and makes the `^` before it take what is to its left
  (`4 + 2 ^ ~ 1` is `(4 + 2) ^ ~ 1`, 0.0278); sqlglot wrote POWER(2, ~1),
  whose bounds DuckDB keeps (4.25). Refused, saying to write the parentheses.
  (Other operators before a `~` are printed back as written, so DuckDB reads
  the reprint as it reads the statement.)
- `a IS [NOT] TRUE` (FALSE, NULL) takes nothing after the keyword to DuckDB;
  postfix_ops.py reads it so. Anything else after IS sqlglot reads and
  DuckDB's parser refuses is refused here too."""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

from .errors import SqlInvalid
from .splitter import Chunk

__all__ = ["check_prefix_operators"]

_PARSER = DuckDB.Parser
# The meta key on the operand of a prefix `+` that is no number literal.
_PLUS = "unary_plus"


def _number(node: exp.Expression) -> bool:
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string


def _unary_plus(parser: Any) -> exp.Expression | None:
    """sqlglot's `+x` is x; one before anything but a number is marked."""
    operand = parser._parse_unary()
    if isinstance(operand, exp.Expression) and not _number(operand):
        operand.meta[_PLUS] = True
    return operand  # type: ignore[no-any-return]


_PARSER.UNARY_PARSERS = {**_PARSER.UNARY_PARSERS, TokenType.PLUS: _unary_plus}


def check_prefix_operators(chunk: Chunk, source: str, expression: exp.Expression) -> None:
    """SqlInvalid for `~ a ^ b`, `a ^ ~ b`, a prefix `+` before anything but a
    number, and `a IS <anything but NULL, TRUE, FALSE>`."""
    tests = expression.find_all(exp.Is) if "is" in source.lower() else ()
    for test in tests:
        if not isinstance(test.expression, exp.Null | exp.Boolean):
            raise SqlInvalid(
                "`a IS [NOT] TRUE` (FALSE, NULL) ends at that keyword to DuckDB: "
                "`a IS NOT TRUE || 'x'` is `(a IS NOT TRUE) || 'x'`; write the parentheses "
                "that say which is meant", chunk.line, chunk.column, chunk.index)
    if "+" in source:
        for node in expression.walk():
            if isinstance(node, exp.Expression) and node.meta.get(_PLUS):
                raise SqlInvalid(
                    "the prefix operator + is supported before a number only (DuckDB has it "
                    "for numbers alone, and Cairn cannot run it elsewhere as written): remove it",
                    chunk.line, chunk.column, chunk.index)
    if "~" in source and ("^" in source or "**" in source):
        for power in expression.find_all(exp.Pow):
            if _bitwise_not_first(power.this):
                raise SqlInvalid(
                    "`~ a ^ b` is `~ (a ^ b)` to DuckDB, which has no ~ for the DOUBLE "
                    "that ^ gives; write the parentheses that say which is meant, "
                    "e.g. `(~a) ^ b`", chunk.line, chunk.column, chunk.index)
            if _bitwise_not_first(power.expression):
                raise SqlInvalid(
                    "`a ^ ~ b <op> c` is `a ^ ~ (b <op> c)` to DuckDB (a prefix ~ takes the "
                    "operators after it), and `x + a ^ ~ b` is `(x + a) ^ ~ b`; write the "
                    "parentheses that say which is meant, e.g. `a ^ (~b)`",
                    chunk.line, chunk.column, chunk.index)


def _bitwise_not_first(operand: exp.Expression) -> bool:
    """Whether a chain of prefix operators (no parentheses) in front of
    `operand` holds a ~."""
    while isinstance(operand, exp.Unary) and not isinstance(operand, exp.Paren):
        if isinstance(operand, exp.BitwiseNot):
            return True
        operand = operand.this
    return False
