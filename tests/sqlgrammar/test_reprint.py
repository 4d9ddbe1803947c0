"""sqlglot's reprint of an expression with a JSON arrow is read by DuckDB's
parser as DuckDB reads the user's text, or the statement is refused
(sqlgrammar/reprint.py). The model is DuckDB's own parse tree
(json_serialize_sql) of the text as written and of the reprint."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from sqlgrammar import SqlInvalid, parse_one

_DB = duckdb.connect()
OPS = ["||", "=", "+", "&", "|", "<<", ">>", "AND", "OR", "LIKE", "->", "->>", "@>", "<@",
       "~~", "//", "*", "<>", "GLOB", "<->", "%", "-"]
POSTFIX = ["IS NULL", "IN ('y')", "NOT IN ('y')", "::INT", "[1]", "BETWEEN 'a' AND 'b'",
           "COLLATE nocase", "IS NOT DISTINCT FROM 'y'"]


def _cases() -> list[str]:
    out = []
    for a in ("->", "->>"):
        out += [f"j {a} 'x' {p}" for p in POSTFIX]
        for op in OPS:
            out += [f"j {a} 'x' {op} 'y'", f"'w' {op} j {a} 'x'", f"a AND j {a} 'x' {op} 'y' OR b",
                    f"NOT j {a} 'x' {op} 'y'", f"(j {a} 'x') {op} 'y'", f"j {a} ('x' {op} 'y')",
                    f"1 + j {a} 'x' {op} 'y'", f"a = j {a} 'x' {op} 'y'"]
    return out


def _tree(text: str) -> Any:
    def strip(n: Any) -> Any:
        if isinstance(n, dict):
            return {k: strip(v) for k, v in n.items() if not k.startswith("query_location")}
        return [strip(x) for x in n] if isinstance(n, list) else n
    answer = json.loads(_DB.execute("SELECT json_serialize_sql($1)", [text]).fetchone()[0])
    return None if answer.get("error") else strip(answer["statements"][0]["node"]["select_list"])


@pytest.mark.parametrize("expression", _cases())
def test_an_arrow_runs_as_duckdb_reads_it_or_is_refused(expression: str) -> None:
    text = f"SELECT {expression} FROM t"
    written = _tree(text)
    if written is None:
        return  # DuckDB's parser refuses it: so does Cairn's gate
    try:
        reprint = parse_one(text).sql
    except SqlInvalid as exc:
        assert "parentheses" in exc.message
        return
    assert _tree(reprint) == written, reprint


@pytest.mark.parametrize("text", ["SELECT j ->> 'a.b'", "SELECT json_extract(j, 'x[0]')",
                                  "SELECT j -> 'x' -> 'y' = 'z' IS NULL"])
def test_common_forms_are_not_refused_for_nothing(text: str) -> None:
    """Forms DuckDB and sqlglot read alike still run (the last one is refused:
    DuckDB reads it as j -> 'x' -> ('y' = 'z' IS NULL))."""
    if text.endswith("IS NULL"):
        with pytest.raises(SqlInvalid):
            parse_one(text)
    else:
        parse_one(text)


FUNCTIONS = ["json_extract(j, 'x')", "json_extract_string(j, 'x')", "json_extract(j, s)",
             "json_extract_path_text(j, 'x')"]
AROUND = ["{f} BETWEEN '0' AND '2'", "NOT {f} BETWEEN '0' AND '2'", "-{f}", "{f} || 'y'",
          "{f} = '1'", "{f} IS NULL", "{f} IN ('1')", "'0' BETWEEN {f} AND '2'", "1 + {f}",
          "json_extract(j, {f})", "{f} AT TIME ZONE 'UTC'"]


@pytest.mark.parametrize("expression", [a.format(f=f) for f in FUNCTIONS for a in AROUND])
def test_a_json_function_written_back_as_an_arrow_keeps_its_grouping(expression: str) -> None:
    """sqlglot writes json_extract(j, 'x') as j -> 'x', and wrote it bare where
    DuckDB then reads the operator around it into the arrow's right side
    (`j -> 'x' BETWEEN '0' AND '2'`, `-j -> 'x'`): the same answer or error
    from the text as written and from its reprint, on one table."""
    db = duckdb.connect()
    db.execute("""CREATE TABLE t AS SELECT * FROM (VALUES ('{"x": 1, "y": 2}'::JSON, 'x'),
                  ('{"x": "y", "xy": 3}'::JSON, 'xy')) v(j, s)""")
    text = f"SELECT {expression} FROM t"

    def answer(sql: str) -> Any:
        try:
            return db.execute(sql).fetchall()
        except duckdb.Error as exc:
            return type(exc).__name__
    assert answer(parse_one(text).sql) == answer(text)


@pytest.mark.parametrize("expression", ["a !~ b < c", "a !~ b >= c", "a !~ b > c", "a !~ b <= c",
                                        "a !~ b = c", "NOT a ~ b", "a !~ b AND c",
                                        "a IS NOT NULL = c", "a NOT LIKE b < c"])
def test_a_negation_sqlglot_writes_keeps_its_grouping(expression: str) -> None:
    """`a !~ b` is written back NOT REGEXP_MATCHES(a, b), which DuckDB read
    into a comparison after it (`NOT x < c` is NOT (x < c)): the same answer
    from the text as written and from its reprint."""
    db = duckdb.connect()
    db.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('ab', 'x', false), ('ab', 'a', true), "
               "('ab', 'a', false), ('ab', 'x', true)) v(a, b, c)")
    text = f"SELECT {expression} FROM t"
    assert db.execute(parse_one(text).sql).fetchall() == db.execute(text).fetchall()


@pytest.mark.parametrize("expression", [
    "x IN [NULL, 1]", "x NOT IN [NULL, 1]", "x IN []", "x IN [1, 2][1:1]", "x IN [1] = y",
    "x NOT IN [1] IS NULL", "x IN [1] AND y", "x IN [y] IN [z]", "x IN [1]::INT[]",
    "x NOT IN list_value(NULL, 1)", "x IN [[1]][1]", "x NOT IN (NULL, 1)", "x IN ([1])"])
def test_in_a_list_is_list_membership_as_duckdb_reads_it(expression: str) -> None:
    """DuckDB reads `x IN [..]` as contains([..], x), never NULL for a NULL
    element; sqlglot read the SQL list `x IN (..)` (`2 NOT IN [NULL, 1]` was
    NULL, not true). `IN (..)` stays the SQL list."""
    text = f"SELECT {expression} FROM t"
    assert _tree(parse_one(text).sql) == _tree(text), parse_one(text).sql
