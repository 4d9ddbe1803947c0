"""A reserved word left dangling after a table (a statement cut short in a
script) is a syntax error, as DuckDB and PostgreSQL say: sqlglot read it as
the table's alias, so `DELETE FROM ns.t LIMIT` deleted every row."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from sqlgrammar import SqlSyntaxError, parse_one
from sqlgrammar.aliases import BARE_VALUE_WORDS, TABLE_WORDS
from tests.helpers import err, ok, rows


def test_the_words_are_those_duckdbs_parser_refuses() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INT)")

    def refused(sql: str) -> bool:
        try:
            con.execute(sql)
        except duckdb.ParserException:
            return True
        except duckdb.Error:
            return False
        return False

    words = [w for (w,) in con.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()]
    assert {w for w in words if refused(f"SELECT x FROM t {w}")} == TABLE_WORDS
    assert {w for w in words if refused(f"SELECT x FROM t AS {w}")} == TABLE_WORDS
    assert {w for w in words if refused(f"SELECT 1 {w}")} == BARE_VALUE_WORDS


@pytest.mark.parametrize(("sql", "column"), [
    ("DELETE FROM app.t LIMIT", 19), ("DELETE FROM app.t ORDER", 19),
    ("DELETE FROM app.t offset", 19), ("DELETE FROM app.t GROUP", 19),
    ("UPDATE app.t ORDER SET v = 0", 14), ("SELECT count(*) FROM app.t ORDER", 28),
    ("SELECT x FROM app.t AS limit", 24), ("SELECT 1 limit", 10),
    ("SELECT x show FROM app.t", 10), ("SELECT * FROM app.t AS t(order)", 26),
    ("WITH limit AS (SELECT 1) SELECT * FROM limit", 6),
    ("DELETE FROM app.t IS", 19), ("UPDATE app.t ISNULL SET v = 0", 14),
    ("DELETE FROM app.t SIMILAR", 19), ("SELECT 1 year", 10), ("DELETE FROM app.t AS", 21),
    ("SELECT x FROM app.t AS\n", 23),
])
def test_a_reserved_word_cannot_name_a_table_or_a_value_without_as(sql: str, column: int) -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA app; CREATE TABLE app.t (x INT, v INT)")
    with pytest.raises(duckdb.ParserException):  # the oracle agrees
        con.execute(sql)
    with pytest.raises(SqlSyntaxError) as info:
        parse_one(sql)
    assert (info.value.line, info.value.column) == (1, column), info.value
    assert "reserved word" in info.value.message or "AS names nothing" in info.value.message


@pytest.mark.parametrize("sql", [
    "SELECT 1 AS limit", "SELECT 1 AS order, 2 AS from", "SELECT x FROM app.t AS \"limit\"",
    "SELECT x FROM app.t t", "SELECT x AS \"group\" FROM app.t WHERE x = 1 LIMIT 1",
    "SELECT x FROM app.t\nAS\n  u", "DELETE FROM app.t WHERE x = 1",
    "SELECT 1 AS /* c */ limit", "SELECT 1 AS -- c\nlimit", "SELECT 1 AS year, 2 AS day",
    "SELECT x isnull FROM app.t", "SELECT 'a AS' AS s",
])
def test_what_duckdb_takes_is_taken(sql: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA app; CREATE TABLE app.t (x INT, v INT)")
    con.execute(sql)
    parse_one(sql)


async def test_a_dangling_keyword_deletes_nothing(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE dk; CREATE TABLE dk.t (id INT PRIMARY KEY, v INT); "
                     "INSERT INTO dk.t VALUES (1, 1), (2, 2)")
    for sql in ("DELETE FROM dk.t LIMIT", "UPDATE dk.t ORDER SET v = 0", "DELETE FROM dk.t AS",
                "DELETE FROM dk.t IS"):
        await err(client, sql, "PARSE_ERROR")
    assert await rows(client, "SELECT id, v FROM dk.t ORDER BY id") == [
        {"id": 1, "v": 1}, {"id": 2, "v": 2}]
