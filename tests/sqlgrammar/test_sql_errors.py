"""Errors: where they point (absolute line/column in the request) and what they say."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from sqlgrammar import EmptySql, SqlInvalid, SqlSyntaxError, iter_script, parse_one, parse_script

FIXTURES = Path(__file__).parent / "fixtures"


def _cases(name: str) -> list[tuple[int, int, str]]:
    """Rows of `<line>:<column><TAB><sql>`; `\\n` in the SQL stands for a newline."""
    rows = []
    for raw in (FIXTURES / name).read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        position, sql = raw.split("\t", 1)
        line, column = position.split(":")
        rows.append((int(line), int(column), sql.replace("\\n", "\n")))
    return rows


MALFORMED = _cases("malformed.txt")
INVALID = _cases("invalid.txt")


def test_fixtures_are_big_enough() -> None:
    assert len(MALFORMED) >= 60
    assert len(INVALID) >= 25


@pytest.mark.parametrize(("line", "column", "sql"), MALFORMED)
def test_malformed(line: int, column: int, sql: str) -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_script(sql)
    err = info.value
    assert (err.line, err.column) == (line, column), err.message
    assert err.expected, err.message
    assert err.expected == sorted(set(err.expected))
    assert f"line {line}, column {column}" in err.message
    assert err.statement is not None and err.statement >= 1


@pytest.mark.parametrize(("line", "column", "sql"), INVALID)
def test_invalid(line: int, column: int, sql: str) -> None:
    with pytest.raises(SqlInvalid) as info:
        parse_script(sql)
    assert (info.value.line, info.value.column) == (line, column), info.value.message
    assert info.value.statement is not None


def test_message_shape() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_one("CREATE FOO x")
    err = info.value
    assert err.message == (
        "unexpected 'FOO' at line 1, column 8; expected one of: "
        "NAMESPACE, SCHEDULE, SHARED, STREAM, TABLE, USER")
    assert str(err) == err.message
    assert err.expected == ["NAMESPACE", "SCHEDULE", "SHARED", "STREAM", "TABLE", "USER"]


def test_end_of_statement_points_after_last_token() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_script("DROP NAMESPACE   ;")
    assert (info.value.line, info.value.column) == (1, 15)
    assert "end of statement" in info.value.message
    assert info.value.expected == ["IF", "name"]


def test_bad_first_word_suggests_every_statement() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_one("SELEKT 1")
    assert {"SELECT", "INSERT", "CREATE", "BACKUP", "RESTORE", "SHOW"} <= set(info.value.expected)


def test_unknown_type_names_the_type() -> None:
    with pytest.raises(SqlInvalid) as info:
        parse_one("CREATE TABLE t (a INT, b HSTORE)")
    assert "'HSTORE'" in info.value.message
    assert (info.value.line, info.value.column) == (1, 26)


def test_statement_index_of_the_failing_statement() -> None:
    sql = "SHOW NAMESPACES; SHOW TABLES;\n/* c; */ CREATE TABLE t (a FOO)"
    with pytest.raises(SqlInvalid) as info:
        parse_script(sql)
    assert info.value.statement == 3
    assert (info.value.line, info.value.column) == (2, 28)


def test_iter_script_yields_statements_before_the_bad_one() -> None:
    """So the executor can run statement 1 and 2 and then report statement 3."""
    it = iter_script("SHOW NAMESPACES; SELECT 1; CREATE NAMESPACE; SHOW TABLES")
    assert next(it).index == 1
    assert next(it).index == 2
    with pytest.raises(SqlSyntaxError) as info:
        next(it)
    assert info.value.statement == 3
    assert (info.value.line, info.value.column) == (1, 44)


def test_unterminated_string_after_good_statements() -> None:
    it = iter_script("SHOW NAMESPACES;\nSELECT 'oops")
    assert next(it).index == 1
    with pytest.raises(SqlSyntaxError) as info:
        next(it)
    assert (info.value.line, info.value.column, info.value.statement) == (2, 8, 2)


@pytest.mark.parametrize(
    ("sql", "line", "column"),
    [
        ("SELECT 1 FROM t WHERE", 1, 17),
        ("SELECT (1", 1, 9),
        ("SHOW TABLES;\nINSERT INTO t VALUES (1", 2, 23),
        ("SELECT 1;\n  UPDATE t SET a = 1 WHERE", 2, 22),
        ("SELECT 1; DELETE FROM t WHERE b = ", 1, 33),
        ("SELECT 1 +\n  FROM x", 2, 3),
    ],
)
def test_sqlglot_errors_are_absolute(sql: str, line: int, column: int) -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_script(sql)
    assert (info.value.line, info.value.column) == (line, column), info.value.message
    assert f"line {line}, column {column}" in info.value.message
    assert "<Token" not in info.value.message and "<class" not in info.value.message


@pytest.mark.parametrize("sql", ["", "   \n\t", ";", ";;  ;", "-- only a comment", "/* x */ ;"])
def test_empty_sql(sql: str) -> None:
    with pytest.raises(EmptySql) as info:
        parse_script(sql)
    assert isinstance(info.value, SqlSyntaxError)
    assert info.value.message == "empty SQL"


def test_parse_one_refuses_two_statements() -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_one("SHOW TABLES;\n  SHOW NAMESPACES")
    assert (info.value.line, info.value.column, info.value.statement) == (2, 3, 2)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE NAMESPACE a\x00b",
        "SELECT " + "(" * 3000 + "1" + ")" * 3000,
        "CREATE TABLE t (a INT DEFAULT " + "9" * 5000 + ")",
        "SHOW BACKUPS LIMIT " + "9" * 5000,
        "\ufeffSHOW NAMESPACES",
        "CREATE TABLE t (" + ", ".join(f"c{i} INT" for i in range(2000)) + ")",
    ],
)
def test_hostile_input_gives_our_errors_only(sql: str) -> None:
    """No input may escape as anything but our two error types (or parse)."""
    with contextlib.suppress(SqlSyntaxError, SqlInvalid):
        parse_script(sql)


# sqlglot and DuckDB read `0x16` as `0 AS x16`: without these refusals an
# INSERT ... VALUES (0x16) stored 0 and said nothing.
@pytest.mark.parametrize(("sql", "column"), [
    ("INSERT INTO t (a, b) VALUES (0x16, 1)", 30),
    ("SELECT 1abc", 8),
    ("SELECT 0b101 FROM t", 8),
    ("SELECT 2_a", 8),
    ("EXPLAIN SELECT 7days", 16),
])
def test_number_with_a_word_glued_on_is_refused(sql: str, column: int) -> None:
    with pytest.raises(SqlSyntaxError) as info:
        parse_script(sql)
    assert info.value.message.startswith("trailing junk after numeric literal"), info.value.message
    assert (info.value.line, info.value.column) == (1, column)


@pytest.mark.parametrize(("sql", "column"), [
    ("INSERT INTO t VALUES (1 x)", 25),
    ("INSERT INTO t VALUES (1), (2 AS y)", 30),
    ("VALUES (1 a)", 11),
])
def test_values_rows_cannot_name_their_values(sql: str, column: int) -> None:
    """DuckDB's parser refuses the name (sqlgrammar/duckparse.py)."""
    with pytest.raises(SqlSyntaxError) as info:
        parse_script(sql)
    assert info.value.message.startswith("syntax error at or near"), info.value.message
    assert (info.value.line, info.value.column) == (1, column)


@pytest.mark.parametrize("sql", [
    "SELECT 1 abc", "SELECT 'x1a', t1a FROM t", "SELECT 1e5, 1.5e3, 1_000",
    "INSERT INTO t SELECT 1 x", "INSERT INTO t VALUES ((SELECT 1 x))", "SELECT '0x16'",
    "SELECT \"2abc\" FROM t",
])
def test_numbers_and_aliases_that_stay_valid(sql: str) -> None:
    assert len(parse_script(sql)) == 1
