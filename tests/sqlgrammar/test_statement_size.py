"""A statement sqlglot would parse for seconds (holding the GIL, so every other
client waits) is refused beyond MAX_PARSED_TOKENS with a clear error; INSERTs
of literal rows (read without sqlglot) and long string literals have no such
bound."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidArgument
from server.pgwire.errors import sqlstate
from sqlgrammar import parser
from sqlgrammar.errors import SqlInvalid


def test_a_huge_select_is_refused_before_sqlglot_parses_it() -> None:
    text = "SELECT 1;\nSELECT " + ", ".join(f"a{i} + {i}" for i in range(20_000)) + " FROM t"
    statements = parser.iter_script(text)
    next(statements)  # the first statement is not held back by the second
    with pytest.raises(SqlInvalid) as caught:
        next(statements)
    assert caught.value.message.startswith("statement too complex: about 80")
    assert (caught.value.statement, caught.value.line, caught.value.column) == (2, 2, 1)
    assert sqlstate(InvalidArgument(caught.value.message)) == "54000"


def test_an_insert_of_expressions_over_the_bound_is_refused() -> None:
    text = "INSERT INTO a.t VALUES " + ", ".join(f"({i}, now())" for i in range(10_000))
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script(text)


def test_literal_rows_and_long_strings_are_not_bound() -> None:
    rows = "INSERT INTO a.t VALUES " + ", ".join(f"({i}, 'x')" for i in range(20_000))
    assert len(parser.parse_script(rows)) == 1  # the fast path: no sqlglot, no bound
    long = "SELECT length('" + "word " * 100_000 + "') AS n"
    assert len(parser.parse_script(long)) == 1  # one token, however long


def test_comments_are_no_tokens_and_hide_none() -> None:
    """The estimate reads left to right: a comment costs nothing, and a quote
    inside a comment does not hide the tokens after it."""
    assert parser._TOKENISH.findall("/* ' */ a, 'b -- c' -- d'\n e") == [
        "", "a", ",", "'b -- c'", "", "e"]
    padded = "SELECT 1 " + "/* " + "word " * 60_000 + "*/"
    assert len(parser.parse_script(padded)) == 1
    hidden = "SELECT /* ' */ " + ", ".join(["1"] * 30_000) + " /* ' */"
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script(hidden)
