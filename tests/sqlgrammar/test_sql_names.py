"""The name rule: [A-Za-z_][A-Za-z0-9_]*, at most 64 characters, folded to lower case."""

from __future__ import annotations

import pytest

from sqlgrammar import SqlInvalid, SqlSyntaxError, ast, parse_one, to_sql

NAME_64 = "n" * 64
NAME_65 = "n" * 65


@pytest.mark.parametrize(
    "template",
    [
        "CREATE NAMESPACE {}",
        "DROP NAMESPACE {}",
        "CREATE TABLE {}.t (a INT)",
        "CREATE TABLE ns.{} (a INT)",
        "CREATE TABLE t ({} INT)",
        "CREATE TABLE t (a INT) WITH ({} = 1)",
        "ALTER TABLE t DROP COLUMN {}",
        "SHOW TABLES IN {}",
        "RESTORE DATABASE a FROM 'x' AS {}",
        "SHOW BACKUPS FOR DATABASE {}",
        "CREATE SCHEDULE {} FOR BACKUP DATABASE a TO 'x' EVERY '1h'",
        'CREATE NAMESPACE "{}"',
    ],
)
def test_length_limit(template: str) -> None:
    parse_one(template.format(NAME_64))
    with pytest.raises(SqlInvalid) as info:
        parse_one(template.format(NAME_65))
    assert "65 characters" in info.value.message
    start = template.index('"{}"' if '"{}"' in template else "{}")
    assert (info.value.line, info.value.column) == (1, start + 1)


def test_system_is_not_rejected_by_the_parser() -> None:
    """`system` is reserved, but the executor says so (with the right error code)."""
    assert parse_one("CREATE NAMESPACE system") == ast.CreateNamespace("system")
    assert parse_one("DROP TABLE system.jobs") == ast.DropTable(ast.TableRef("system", "jobs"))
    query = parse_one("SELECT * FROM system.jobs")
    assert isinstance(query, ast.Query) and query.kind == "select"


def test_names_fold_to_lower_case() -> None:
    assert parse_one("CREATE TABLE MyNs.MyTable (MyCol INT) WITH (MyOpt = 'KeepCase')") == (
        ast.CreateTable(
            ast.TableRef("myns", "mytable"),
            (ast.ColumnDef("mycol", ast.TypeSpec("INT")),),
            options=(("myopt", "KeepCase"),),
        ))


def test_quoted_names_fold_and_obey_the_rule() -> None:
    assert parse_one('CREATE NAMESPACE "MyApp"') == ast.CreateNamespace("myapp")
    assert parse_one('CREATE NAMESPACE "if"') == ast.CreateNamespace("if")
    for bad in ['"my app"', '"9lives"', '"a-b"', '""', '"a""b"', '"é"']:
        with pytest.raises(SqlInvalid):
            parse_one(f"CREATE NAMESPACE {bad}")


@pytest.mark.parametrize("bad", ["9lives", "a-b", "é", "a.b.c"])
def test_bad_bare_names_are_syntax_errors(bad: str) -> None:
    with pytest.raises(SqlSyntaxError):
        parse_one(f"CREATE NAMESPACE {bad}")


def test_keywords_are_not_reserved_where_a_name_must_come() -> None:
    stmt = parse_one("CREATE TABLE user.history (user TEXT, table INT, key INT, to TEXT)")
    assert isinstance(stmt, ast.CreateTable)
    assert stmt.table == ast.TableRef("user", "history")
    assert [c.name for c in stmt.columns] == ["user", "table", "key", "to"]
    assert parse_one("DESCRIBE TABLE history HISTORY") == ast.DescribeTable(
        ast.TableRef(None, "history"), history=True)


def test_printer_quotes_names_that_are_keywords() -> None:
    assert to_sql(ast.CreateNamespace("if")) == 'CREATE NAMESPACE "if"'
    assert to_sql(ast.DropTable(ast.TableRef("table", "t"))) == 'DROP TABLE "table".t'
    assert to_sql(ast.CreateNamespace("app")) == "CREATE NAMESPACE app"
    # Unquoted, `if` would be read as the keyword:
    with pytest.raises(SqlSyntaxError):
        parse_one("CREATE NAMESPACE if")
