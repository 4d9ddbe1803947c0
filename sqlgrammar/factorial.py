"""A standalone `!`, which DuckDB reads as the postfix factorial and sqlglot
as NOT (a check that sqlgrammar/reprint.py calls).

Found by trying against DuckDB itself (tests/e2e/test_factorial_bang.py):
`3 ! IN (1, 2)` is `(3!) IN (1, 2)` to DuckDB (false: 6 is in neither), and
sqlglot read `NOT 3 IN (1, 2)` (true), so `DELETE ... WHERE k ! IN (1, 2)`
deleted exactly the rows DuckDB keeps. The same for `! IS [NOT] NULL`,
`! ISNULL`, `! BETWEEN`, `! LIKE`, `! IS [NOT] DISTINCT FROM`, ...; a prefix
`!x` is no function to DuckDB and was NOT x. Every `!` that is not part of
one of DuckDB's operators `!=`, `!~~`, `!~~*`, `!~`, `!~*` (written as one
run of operator characters) is refused, saying what to write. A `!` inside a
string, a quoted name or a comment is no token and is left alone."""

from __future__ import annotations

import re

from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from .errors import SqlInvalid
from .splitter import Chunk, absolute
from .uncommented import Uncommented

__all__ = ["check_bang", "standalone_bang"]

_DUCKDB = Dialect.get_or_raise("duckdb")
# A `!` that is no `!=`: only then is the text tokenized.
_BANG = re.compile(r"!(?!=)")
# PostgreSQL's (and DuckDB's) operator characters: a run of them is one operator.
_OPERATOR_CHARS = frozenset("+-*/<>=~!@#%^&|`?")
# DuckDB's operators that start with `!` and that sqlglot reads alike (`!=` is
# sqlglot's own token, never a NOT).
_KEPT = frozenset({"!~~", "!~~*", "!~", "!~*"})


def _run(text: str, at: int) -> str:
    """The run of operator characters around text[at], as DuckDB's lexer
    reads one operator (a comment ends a run: Uncommented leaves `/**/` after
    a string for one)."""
    start = at
    while start > 0 and text[start - 1] in _OPERATOR_CHARS and not text.endswith("*/", 0, start):
        start -= 1
    end = at + 1
    while end < len(text) and text[end] in _OPERATOR_CHARS:
        end += 1
    return text[start:end]


def standalone_bang(text: str) -> int | None:
    """The offset in `text` (comments blanked) of its first `!` that DuckDB
    reads otherwise than sqlglot, or None."""
    if _BANG.search(text) is None:
        return None
    for token in _DUCKDB.tokenize(text):
        if token.token_type == TokenType.NOT and token.text == "!" \
                and _run(text, token.start) not in _KEPT:
            return int(token.start)
    return None


def check_bang(chunk: Chunk, src: Uncommented) -> None:
    """SqlInvalid for a `!` that is not part of `!=`, `!~~`, `!~~*`, `!~`, `!~*`."""
    at = standalone_bang(src.text)
    if at is None:
        return
    line, column = absolute(chunk, *src.line_column(at))
    raise SqlInvalid(
        "`!` is DuckDB's postfix factorial (`3 ! IN (1, 2)` is `(3!) IN (1, 2)`, not "
        "NOT IN; a prefix `!x` is no function there), and Cairn cannot run it as written: "
        "write factorial(x) for the factorial, or NOT for a negation "
        f"(at line {line}, column {column})", line, column, chunk.index)
