"""Errors of the SQL layer.

They carry plain positions and no HTTP codes: `sqlgrammar` imports no other Cairn
package, so the server maps these to PARSE_ERROR / INVALID_ARGUMENT /
INVALID_REQUEST itself. `line` and `column` are 1-based and point into the whole
request text; `statement` is the 1-based index of the failing statement, when known.
"""

from __future__ import annotations

import re

# A string literal's token as written: '…', E'…', N'…', X'…', B'…', U&'…', $$…$$,
# $tag$…$tag$ (not a `$1` parameter). An error never shows one: it may be a passphrase.
_STRING_TOKEN = re.compile(r"(?:[EeNnXxBb]|[Uu]&)?'|\$(?!\d+$)")


def is_string_literal(token: str) -> bool:
    """Whether `token` (as written) is a string literal, which errors never echo."""
    return _STRING_TOKEN.match(token) is not None


class SqlSyntaxError(Exception):
    """The text does not parse. `expected` lists what could have come instead."""

    def __init__(
        self,
        message: str,
        line: int = 1,
        column: int = 1,
        expected: list[str] | None = None,
        statement: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.expected: list[str] = list(expected or [])
        self.statement = statement

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, line={self.line}, "
            f"column={self.column}, expected={self.expected!r}, statement={self.statement})"
        )


class EmptySql(SqlSyntaxError):
    """The request holds no statement at all (only blanks, comments or `;`).

    A subclass so callers can answer INVALID_REQUEST instead of PARSE_ERROR."""

    def __init__(self) -> None:
        super().__init__("empty SQL", 1, 1, [])


class SqlInvalid(Exception):
    """The text parses but cannot mean anything: unknown type, bad name, bad option."""

    def __init__(
        self, message: str, line: int = 1, column: int = 1, statement: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.statement = statement

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, line={self.line}, "
            f"column={self.column}, statement={self.statement})"
        )
