"""Ordinary SQL goes to sqlglot; whatever is not a plain query comes back as 'other'."""

from __future__ import annotations

import pytest
from sqlglot import exp

from sqlgrammar import SqlSyntaxError, ast, parse_one
from sqlgrammar.errors import SqlInvalid


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "select"),
        ("select * from app.t where _deleted = true", "select"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "select"),
        ("(SELECT 1) UNION SELECT 2", "select"),
        ("FROM app.t", "select"),
        ("VALUES (1), (2)", "select"),
        ("INSERT INTO app.t VALUES (1)", "insert"),
        ("INSERT INTO app.t (a, b) SELECT a, b FROM app.u", "insert"),
        ("UPDATE app.t SET a = 1", "update"),
        ("DELETE FROM app.t WHERE a = 1", "delete"),
        ("WITH x AS (SELECT 1) DELETE FROM app.t", "delete"),
        # Never silently accepted: the executor refuses these.
        ("COPY app.t TO 'out.csv'", "other"),
        ("ATTACH 'x.db' AS x", "other"),
        ("DETACH x", "other"),
        ("PRAGMA database_list", "other"),
        ("SET threads = 1", "other"),
        ("INSTALL httpfs", "other"),
        ("LOAD httpfs", "other"),
        ("EXPLAIN", "other"),
        ("CREATE VIEW v AS SELECT 1", "other"),
        ("CREATE OR REPLACE TABLE t (a INT)", "other"),
        ("CREATE TEMP TABLE t (a INT)", "other"),
        ("CREATE TABLE t AS SELECT 1", "other"),
        ("CREATE TABLE IF NOT EXISTS app.t AS SELECT * FROM app.u", "other"),
        ("CREATE MACRO m(a) AS a + 1", "other"),
        ("DROP VIEW v", "other"),
        ("ALTER VIEW v RENAME TO w", "other"),
        ("SELECT * INTO newt FROM app.t", "other"),
        ("CALL pragma_version()", "other"),
        ("SUMMARIZE app.t", "summarize"),
        ("SUMMARIZE SELECT * FROM app.t", "summarize"),
        ("SUMMARIZE '/etc/passwd'", "summarize"),  # parsed; refused when it runs
        ("DESCRIBE SELECT * FROM app.t", "describe"),
        ("desc (SELECT 1)", "describe"),
        ("PIVOT app.t ON k USING sum(v)", "pivot"),
        ("UNPIVOT app.t ON a, b INTO NAME k VALUE v", "pivot"),
        ("USE app", "other"),
    ],
)
def test_query_kind(sql: str, kind: str) -> None:
    stmt = parse_one(sql)
    assert isinstance(stmt, ast.Query)
    assert stmt.kind == kind
    assert isinstance(stmt.expression, exp.Expression)
    assert stmt.sql == stmt.expression.sql(dialect="duckdb")


@pytest.mark.parametrize(("sql", "analyze", "kind"), [
    ("EXPLAIN SELECT 1", False, "select"),
    ("explain analyze SELECT * FROM app.t", True, "select"),
    ("EXPLAIN\n  ANALYZE\tPIVOT app.t ON k USING sum(v)", True, "pivot"),
    ("EXPLAIN SUMMARIZE app.t", False, "summarize"),
    ("EXPLAIN COPY app.t TO 'x'", False, "other"),
    ("EXPLAIN INSERT INTO app.t VALUES (1)", False, "insert"),
])
def test_explain_wraps_the_statement_it_explains(sql: str, analyze: bool, kind: str) -> None:
    stmt = parse_one(sql)
    assert isinstance(stmt, ast.Explain)
    assert (stmt.analyze, stmt.query.kind) == (analyze, kind)


def test_describe_of_a_table_stays_cairns() -> None:
    assert parse_one("DESCRIBE app.t") == ast.DescribeTable(ast.TableRef("app", "t"))
    assert parse_one("DESC TABLE select_t") == ast.DescribeTable(ast.TableRef(None, "select_t"))


def test_query_equality_ignores_the_tree() -> None:
    a, b = parse_one("select  1"), parse_one("SELECT 1")
    assert isinstance(a, ast.Query) and isinstance(b, ast.Query)
    assert a == b and a.expression is not b.expression


def test_cairn_statements_do_not_reach_sqlglot() -> None:
    assert parse_one("CREATE TABLE t (a INT)") == ast.CreateTable(
        ast.TableRef(None, "t"), (ast.ColumnDef("a", ast.TypeSpec("INT")),))
    assert parse_one("DROP TABLE t") == ast.DropTable(ast.TableRef(None, "t"))


def test_a_typo_in_a_cairn_statement_is_a_syntax_error_not_other() -> None:
    """CREATE NAMESPAC must not come back as Query(kind='other') (PERMISSION_DENIED)."""
    for sql in ("CREATE NAMESPAC app", "DROP NAMESPAC app", "ALTER NAMESPACE app", "FLUSH app.t"):
        with pytest.raises(SqlSyntaxError):
            parse_one(sql)


def test_comment_before_the_first_word_does_not_change_routing() -> None:
    stmt = parse_one("/* hi */ -- there\n SHOW TABLES")
    assert stmt == ast.ShowTables()
    query = parse_one("-- hi\nSELECT 1")
    assert isinstance(query, ast.Query) and query.kind == "select"


@pytest.mark.parametrize("sql", [
    "SELECT 1 -- INTERVAL '1 day 02:00'",
    "SELECT 1 /* was: now() - INTERVAL '1 day 12:00:00' */",
    "EXPLAIN SELECT 1 -- INTERVAL '1 day 02:00'\n",
])
def test_an_interval_inside_a_comment_is_not_checked(sql: str) -> None:
    """The INTERVAL check (a string sqlglot would cut) read comments too: a
    statement whose comment held the old spelling was refused."""
    assert isinstance(parse_one(sql), (ast.Query, ast.Explain))


def test_an_interval_outside_a_comment_is_still_checked() -> None:
    with pytest.raises(SqlInvalid, match="CAST"):
        parse_one("SELECT 1 /* note */ + 0, now() - INTERVAL '1 day 12:00:00' -- x")
