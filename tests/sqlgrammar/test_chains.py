"""The bound on chained subscripts and method calls (sqlgrammar/chains.py)."""

from __future__ import annotations

import pytest

from sqlgrammar.chains import MAX_CHAINED_POSTFIX, longest_chain
from sqlgrammar.errors import SqlInvalid
from sqlgrammar.parser import parse_script


def test_chains_are_measured_per_chain() -> None:
    n = MAX_CHAINED_POSTFIX + 10
    assert longest_chain("SELECT x" + "[1]" * n) == n - 1
    assert longest_chain("SELECT x" + ".f()" * n) == n - 1
    assert longest_chain("SELECT " + ", ".join(["x[1][2]"] * n)) == 1
    assert longest_chain("SELECT '" + "][" * n + "' -- " + "][" * n) == 0  # strings, comments
    assert longest_chain("SELECT x" + "[1] -- c\n" * n) == n - 1
    assert longest_chain("SELECT x" + "[1] -- c\r" * n) == n - 1  # a CR ends `--` too


def test_a_chain_past_the_bound_is_refused() -> None:
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parse_script("SELECT x" + "[1]" * (MAX_CHAINED_POSTFIX + 2))
    parse_script("SELECT x" + "[1]" * (MAX_CHAINED_POSTFIX + 1))
