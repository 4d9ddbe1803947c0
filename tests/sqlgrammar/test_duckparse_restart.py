"""The parser's own DuckDB, once an INTERNAL error invalidated it, failed
every later `json_serialize_sql`: statements lost DuckDB's parse tree, and a
long statement's syntax error was no longer found, until the server
restarted. Now a call that meets it makes a new database and runs again."""

from __future__ import annotations

import duckdb
import pytest

from sqlgrammar import duckparse


def test_the_parsers_duckdb_is_replaced_after_an_internal_error() -> None:
    with pytest.raises(duckdb.InternalException):
        duckparse._cursor().execute(
            "SELECT json_type(x) FROM (SELECT ['2', NULL]::JSON[] AS x) s").fetchall()
    assert duckparse.serialized("SELECT 1") is not None
    long = "SELEC " + " + ".join(["1"] * (duckparse.OFF_GIL_CHARS // 4))
    refusal = duckparse.duckdb_refusal(long)
    assert refusal is not None and refusal[1] == "SELEC"
    assert duckparse.duckdb_refusal("SELEC 1") == (0, "SELEC", 'syntax error at or near "SELEC"')
