"""DuckDB's parser reads each query sqlglot reads (sqlgrammar/duckparse.py):
where sqlglot was more lenient it dropped or re-read text, and statements
DuckDB and PostgreSQL call syntax errors ran: `DELETE FROM ns.t WHERE k NOT
IN` deleted every row, `UPDATE ns.t` rewrote every row, `VALUES (1, 'a')
(2, 'b')` inserted one row. Each is PARSE_ERROR at the token DuckDB names;
what DuckDB takes is taken, keywords sqlglot reads as column names included."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from sqlgrammar import SqlSyntaxError, ast, duckparse, parse_one, parse_script
from tests.helpers import ok, rows, sql

# (statement, line, column of the token DuckDB's parser refuses)
REFUSED = [
    # cut short: sqlglot read no SET list, or IN with no list (NOT (k IN ()) is TRUE)
    ("UPDATE r1.t", 1, 11), ("UPDATE r1.t SET", 1, 13), ("UPDATE r1.t x SET", 1, 15),
    ("UPDATE r1.t WHERE k = 1", 1, 13),
    ("DELETE FROM t WHERE k NOT IN", 1, 27), ("DELETE FROM t WHERE k NOT IN -- (1, 2)\n", 1, 27),
    ("DELETE FROM t WHERE NOT k IN", 1, 27), ("DELETE FROM t WHERE (k, v) NOT IN", 1, 32),
    ("DELETE FROM t WHERE v COLLATE nocase NOT IN", 1, 42),
    ("UPDATE t SET v = 'zapped' WHERE k NOT IN", 1, 39), ("UPDATE t SET v = 'q' in", 1, 22),
    # junk after the table: sqlglot dropped it
    ("DELETE FROM t 'limit'", 1, 15), ("DELETE FROM t AS 's'", 1, 18), ("DELETE FROM t ,", 1, 15),
    ("DELETE FROM t *", 1, 15), ("DELETE FROM t, u", 1, 14), ("UPDATE t SET v = 'a' 's'", 1, 22),
    # rows: a missing comma made the next row column names; adjacent literals joined
    ("INSERT INTO f VALUES (1, 'a', 1) (2, 'b', 2)", 1, 34),
    ("INSERT INTO f (k, v, n) VALUES (1, 'a', 1), (2, 'b', 2)\n(3, 'c', 3)", 2, 1),
    ("INSERT INTO f VALUES (1, 'a', 1) x", 1, 34),
    ("INSERT INTO f VALUES (1, 'a', '1' '2')", 1, 35),
    ("INSERT INTO f VALUES (1, 'a' in, 1)", 1, 32),
    # a clause twice: sqlglot kept the last
    ("UPDATE t SET v = 'z' WHERE k = 2 WHERE k = 1", 1, 34),
    ("UPDATE t SET v = 'z' SET n = 5 WHERE k = 1", 1, 22),
    ("UPDATE t SET v = 'z' SET WHERE k = 1", 1, 22),
    # what the dangling-word check (sqlgrammar/aliases.py, now gone) refused
    ("DELETE FROM app.t LIMIT", 1, 19), ("DELETE FROM app.t ORDER", 1, 19),
    ("DELETE FROM app.t offset", 1, 19), ("UPDATE app.t ORDER SET v = 0", 1, 14),
    ("SELECT count(*) FROM app.t ORDER", 1, 28), ("SELECT x FROM app.t AS limit", 1, 24),
    ("SELECT 1 limit", 1, 10), ("SELECT x show FROM app.t", 1, 10),
    ("SELECT * FROM app.t AS t(order)", 1, 26),
    ("WITH limit AS (SELECT 1) SELECT * FROM limit", 1, 6),
    ("DELETE FROM app.t IS", 1, 19), ("UPDATE app.t ISNULL SET v = 0", 1, 14),
    ("SELECT 1 year", 1, 10), ("DELETE FROM app.t AS", 1, 19), ("SELECT x FROM app.t AS\n", 1, 21),
    ("INSERT INTO t VALUES (1 x)", 1, 25), ("INSERT INTO t VALUES (1), (2 AS y)", 1, 30),
    ("VALUES (1 a)", 1, 11),
    # positions: a later statement, a later line, characters of several bytes
    ("SELECT 1;\n  DELETE FROM t WHERE k NOT IN", 2, 29), ("SELECT 'é', 'ü' 'x'", 1, 17),
    ("EXPLAIN DELETE FROM t WHERE k NOT IN", 1, 35),
]


def _oracle_refuses(sql: str) -> bool:
    try:
        duckdb.connect().extract_statements(sql)
    except duckdb.ParserException:
        return True
    return False


@pytest.mark.parametrize(("sql", "line", "column"), REFUSED)
def test_what_duckdbs_parser_refuses_is_a_syntax_error_where_it_says(
        sql: str, line: int, column: int) -> None:
    assert _oracle_refuses(sql.split(";")[-1].removeprefix("EXPLAIN "))
    with pytest.raises(SqlSyntaxError) as info:
        parse_script(sql)
    assert (info.value.line, info.value.column) == (line, column), info.value
    assert info.value.message.startswith("syntax error at or near "), info.value
    assert f"at line {line}, column {column}" in info.value.message


@pytest.mark.parametrize(("sql", "line", "column"), REFUSED)
def test_a_long_statement_read_off_the_gil_is_refused_alike(
        monkeypatch: pytest.MonkeyPatch, sql: str, line: int, column: int) -> None:
    """Past OFF_GIL_CHARS the text goes through json_serialize_sql in a query
    (no GIL held) instead of extract_statements: the same verdicts, the same
    positions."""
    monkeypatch.setattr(duckparse, "OFF_GIL_CHARS", 0)
    with pytest.raises(SqlSyntaxError) as info:
        parse_script(sql)
    assert (info.value.line, info.value.column) == (line, column), info.value


def test_a_long_statement_is_read_whole() -> None:
    names = ", ".join(f"c{i}" for i in range(2000))
    assert len(names) > duckparse.OFF_GIL_CHARS
    parse_one(f"SELECT {names} FROM app.t WHERE c1 IN (1, 2)")
    with pytest.raises(SqlSyntaxError) as info:
        parse_one(f"SELECT 'é', {names} FROM app.t WHERE c1 NOT IN")
    assert info.value.column == len(f"SELECT 'é', {names} FROM app.t WHERE c1 NOT ") + 1


# Each word the dangling-word check refused as a value's name without AS.
_BARE_VALUE_WORDS = [
    "centuries", "century", "day", "days", "decade", "decades", "escape", "exclude",
    "export_state", "filter", "hour", "hours", "ignore", "microsecond", "microseconds",
    "millennia", "millennium", "millisecond", "milliseconds", "minute", "minutes", "month",
    "months", "over", "precision", "quarter", "quarters", "rename", "replace", "respect",
    "second", "seconds", "varying", "week", "weeks", "within", "without", "year", "years",
]


@pytest.mark.parametrize("sql", [
    "SELECT 1 AS limit", "SELECT 1 AS order, 2 AS from", "SELECT x FROM app.t AS \"limit\"",
    "SELECT x FROM app.t t", "SELECT x AS \"group\" FROM app.t WHERE x = 1 LIMIT 1",
    "SELECT x FROM app.t\nAS\n  u", "DELETE FROM app.t WHERE x = 1",
    "SELECT 1 AS /* c */ limit", "SELECT 1 AS -- c\nlimit", "SELECT 1 AS year, 2 AS day",
    "SELECT x isnull FROM app.t", "SELECT 'a AS' AS s",
    # refused by the dangling-word check, taken by DuckDB
    "SELECT 1 AS as", "SELECT day: 1, month: 2", "EXPLAIN SELECT 1 -- as",
    "EXPLAIN SELECT 42 AS answer -- cast it as", "EXPLAIN SELECT 1 AS /* c */ limit",
    *(f"SELECT {word}: 1" for word in _BARE_VALUE_WORDS),
    # PostgreSQL's own forms; parameters
    "SELECT 'a'\n'b'", "SELECT x FROM app.t WHERE x = $1 AND v = ?", "SELECT $$a;b$$",
    "SELECT E'it\\'s'", "UPDATE app.t SET v = 1 WHERE x IN (SELECT x FROM app.t)",
])
def test_what_duckdb_takes_is_taken(sql: str) -> None:
    assert not _oracle_refuses(sql)
    parse_one(sql)


@pytest.mark.parametrize("sql", [
    "SELECT id, i, s, d, r, b, t, by, ts, dec, j, day FROM types.all_types WHERE id = 1",
    "INSERT INTO app.t (id, by, left) VALUES (1, now(), 2)",
    "UPDATE app.t SET end = 1, by = 2 WHERE left = 3 AND at > 0",
    "SELECT x FROM left.t ORDER BY right, offset",
])
def test_keywords_sqlglot_reads_as_names_stay_names(sql: str) -> None:
    """DuckDB refuses `by`, `left`, `end` as bare names; sqlglot reads them as
    column or table names and Cairn writes them quoted, so they were taken.
    DuckDB reads the text again with those names quoted, and takes it."""
    assert _oracle_refuses(sql)
    parse_one(sql)


def test_a_refusal_past_a_quoted_name_points_into_the_text_as_written() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_one("SELECT by, left, 'é' 'x' FROM app.t")
    assert (info.value.line, info.value.column) == (1, 22), info.value
    with pytest.raises(SqlSyntaxError) as info:  # an alias is never quoted so
        parse_one("DELETE FROM app.by LIMIT")
    assert info.value.column == 20, info.value


@pytest.mark.parametrize("sql", [
    "UPDATE app.t SET v = 'hunter2' 'pass'", "UPDATE app.t SET v = $$hunter2$$ 'pass'",
    # sqlglot's errors showed these whole: only a '…' was kept from them
    "UPDATE app.t SET v = 'a' E'hunter2'", "UPDATE app.t SET v = 'a' e'hunter2'",
    "SELECT 1 $$hunter2$$", "SELECT 1 $q$hunter2$q$", "SELECT 1 N'hunter2'",
])
def test_a_string_is_never_shown(sql: str) -> None:
    """It may be a passphrase, whoever refuses the statement."""
    with pytest.raises(SqlSyntaxError) as info:
        parse_one(sql)
    assert "hunter2" not in info.value.message and "pass" not in info.value.message
    assert "string literal" in info.value.message


def test_what_duckdb_refuses_after_the_syntax_is_left_to_the_run() -> None:
    """`DATE()` and `$0` are refused by DuckDB's transformer, not its
    grammar: they parse as before and the run says what is wrong."""
    for text in ("SELECT DATE()", "SELECT $0", "INSERT INTO app.t VALUES (1), (2, 3)"):
        assert isinstance(parse_one(text), ast.Query)


# The attacker's writes, on a table of rows (k, v, n): each answered 200 and
# deleted, rewrote or lost rows (the INSERTs try the fast path first).
WRITES = [
    "UPDATE g.t", "UPDATE g.t SET", "UPDATE g.t x SET", "UPDATE g.t WHERE k = 1",
    "DELETE FROM g.t WHERE k NOT IN", "DELETE FROM g.t WHERE k NOT IN -- (1, 2)\n",
    "DELETE FROM g.t WHERE NOT k IN", "DELETE FROM g.t WHERE (k, v) NOT IN",
    "DELETE FROM g.t WHERE v COLLATE nocase NOT IN",
    "UPDATE g.t SET v = 'zapped' WHERE k NOT IN", "UPDATE g.t SET v = 'q' in",
    "DELETE FROM g.t 'limit'", "DELETE FROM g.t AS 's'", "DELETE FROM g.t ,",
    "DELETE FROM g.t *", "DELETE FROM g.t, g.u", "UPDATE g.t SET v = 'a' 's'",
    "INSERT INTO g.t VALUES (4, 'a', 1) (5, 'b', 2)",
    "INSERT INTO g.t (k, v, n) VALUES (4, 'a', 1), (5, 'b', 2)\n(6, 'c', 3)",
    "INSERT INTO g.t VALUES (4, 'a', 1) x", "INSERT INTO g.t VALUES (4, 'a', '1' '2')",
    "INSERT INTO g.t VALUES (4, 'a' in, 1)",
    "UPDATE g.t SET v = 'z' WHERE k = 2 WHERE k = 1",
    "UPDATE g.t SET v = 'z' SET n = 5 WHERE k = 1",
    "UPDATE g.t SET v = 'z' SET WHERE k = 1", "DELETE FROM g.t LIMIT", "DELETE FROM g.t AS",
]


async def test_a_refused_write_changes_nothing(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE g; CREATE TABLE g.t (k BIGINT PRIMARY KEY, v TEXT, "
                     "n BIGINT); CREATE TABLE g.u (k BIGINT PRIMARY KEY); "
                     "INSERT INTO g.t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30); "
                     "INSERT INTO g.u VALUES (9)")
    before = await rows(client, "SELECT k, v, n, _updated FROM g.t ORDER BY k")
    for text in WRITES:
        assert _oracle_refuses(text.replace("g.", "")), text
        status, body = await sql(client, text)
        assert status == 400 and body["error"]["code"] == "PARSE_ERROR", (text, body)
        error = body["error"]
        assert error["message"].startswith("syntax error at or near "), (text, error)
        assert f"at line {error['line']}, column {error['column']}" in error["message"]
    assert await rows(client, "SELECT k, v, n, _updated FROM g.t ORDER BY k") == before


async def test_duckdbs_prefix_aliases_and_keyword_names_answer(client: Any) -> None:
    assert await rows(client, "SELECT year: 1, day: 2") == [{"year": 1, "day": 2}]
    assert await rows(client, "SELECT 1 AS as") == [{"as": 1}]
    await ok(client, "EXPLAIN SELECT 42 AS answer -- cast it as")
    await ok(client, "CREATE NAMESPACE kw; CREATE TABLE kw.t (k BIGINT PRIMARY KEY, by TEXT)")
    await ok(client, "INSERT INTO kw.t (k, by) VALUES (1, upper('x')), (2, 'y')")
    await ok(client, "UPDATE kw.t SET by = 'z' WHERE by = 'y'")
    assert await rows(client, "SELECT k, by FROM kw.t ORDER BY by") == [
        {"k": 1, "by": "X"}, {"k": 2, "by": "z"}]
