"""Splitting a request into statements: only a real `;` ends one."""

from __future__ import annotations

import pytest

from sqlgrammar import SqlSyntaxError, ast, parse_script
from sqlgrammar.splitter import split_script


def texts(sql: str) -> list[str]:
    return [chunk.text for chunk in split_script(sql)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),
        ("SELECT E'\\';' ; SELECT 2", ["SELECT E'\\';'", "SELECT 2"]),
        ('SELECT "a;b" FROM t; SELECT 2', ['SELECT "a;b" FROM t', "SELECT 2"]),
        ('SELECT "a"";b" FROM t; SELECT 2', ['SELECT "a"";b" FROM t', "SELECT 2"]),
        ("SELECT 1 -- no; split\n; SELECT 2", ["SELECT 1 -- no; split", "SELECT 2"]),
        ("SELECT /* ; */ 1; SELECT 2", ["SELECT /* ; */ 1", "SELECT 2"]),
        ("SELECT /* a /* ; */ ; */ 1; SELECT 2", ["SELECT /* a /* ; */ ; */ 1", "SELECT 2"]),
        ("SELECT $$a;b$$; SELECT 2", ["SELECT $$a;b$$", "SELECT 2"]),
        ("SELECT $x$ ; $y$ ; $x$; SELECT 2", ["SELECT $x$ ; $y$ ; $x$", "SELECT 2"]),
        ("SELECT a$b$c FROM t; SELECT 2", ["SELECT a$b$c FROM t", "SELECT 2"]),
        ("SHOW TABLES;;;SHOW NAMESPACES;", ["SHOW TABLES", "SHOW NAMESPACES"]),
        ("  SHOW TABLES  \n\n ;", ["SHOW TABLES"]),
        ("-- lead\n/* lead */ SHOW TABLES", ["SHOW TABLES"]),
        ("BACKUP DATABASE a TO 'x;y' WITH (l = ';--/*')",
         ["BACKUP DATABASE a TO 'x;y' WITH (l = ';--/*')"]),
        ("a;b", ["a", "b"]),
    ],
)
def test_split(sql: str, expected: list[str]) -> None:
    assert texts(sql) == expected


def test_semicolon_in_string_of_a_cairn_statement() -> None:
    [parsed] = parse_script("BACKUP DATABASE app TO 'dir;with;semicolons' WITH (label = 'a;b')")
    assert parsed.statement == ast.BackupDatabase(
        "app", "dir;with;semicolons", options=(("label", "a;b"),))


def test_positions_of_later_statements() -> None:
    sql = (
        "SHOW NAMESPACES;\n"
        "\n"
        "   CREATE NAMESPACE app;  SHOW TABLES IN app\n"
        ";\t/* comment\n"
        "  ; still comment */  DESCRIBE TABLE app.t;"
    )
    parsed = parse_script(sql)
    assert [(p.index, p.line, p.column) for p in parsed] == [
        (1, 1, 1), (2, 3, 4), (3, 3, 27), (4, 5, 23)]
    assert [p.text for p in parsed] == [
        "SHOW NAMESPACES", "CREATE NAMESPACE app", "SHOW TABLES IN app", "DESCRIBE TABLE app.t"]
    assert [type(p.statement) for p in parsed] == [
        ast.ShowNamespaces, ast.CreateNamespace, ast.ShowTables, ast.DescribeTable]


def test_position_after_multiline_string() -> None:
    sql = "SELECT 'line1\nline2;\nline3'; SHOW TABLES"
    parsed = parse_script(sql)
    assert [(p.line, p.column) for p in parsed] == [(1, 1), (3, 9)]


def test_crlf_and_tabs_count_as_characters() -> None:
    sql = "SHOW TABLES;\r\n\tSHOW NAMESPACES;\r\n\t\tCREATE NAMESPACE x"
    parsed = parse_script(sql)
    assert [(p.line, p.column) for p in parsed] == [(1, 1), (2, 2), (3, 3)]


def test_comment_inside_cairn_statement_keeps_positions() -> None:
    """Comments are blanked for the grammar, so error columns still match the text."""
    with pytest.raises(SqlSyntaxError) as info:
        parse_script("CREATE /* ;; */ NAMESPACE /* x\n y */ app extra")
    assert (info.value.line, info.value.column) == (2, 11)


def test_chunk_offsets_point_into_the_request() -> None:
    sql = "  SHOW TABLES ;  SHOW NAMESPACES"
    chunks = list(split_script(sql))
    assert [sql[c.start : c.start + len(c.text)] for c in chunks] == [
        "SHOW TABLES", "SHOW NAMESPACES"]


def test_a_lone_carriage_return_ends_a_line_comment() -> None:
    """`--` runs to a newline or a carriage return, as in PostgreSQL's scanner,
    DuckDB and sqlglot: what follows a lone CR is code. It was blanked to the next
    newline, so a BACKUP's WITH options after `-- note\\r` were dropped without a
    word (an unencrypted backup, answered 'completed') and `SELECT 1 --c\\r; SELECT 2`
    was one statement."""
    assert texts("SELECT 1 --c\r; SELECT 2") == ["SELECT 1 --c", "SELECT 2"]
    [chunk] = split_script("SHOW -- c\rTABLES")
    assert chunk.code == "SHOW     \rTABLES"
    backup, restore = (parsed.statement for parsed in parse_script(
        "BACKUP DATABASE r2 TO 't' -- nightly, encrypted\r"
        "WITH (encryption_passphrase = 'hunter2', label = 'enc');\r\n"
        "RESTORE DATABASE r2 FROM 't' AS r2copy -- the first one\rWITH (backup_id = 'bk-1')"))
    assert isinstance(backup, ast.BackupDatabase) and isinstance(restore, ast.RestoreDatabase)
    assert dict(backup.options) == {"encryption_passphrase": "hunter2", "label": "enc"}
    assert dict(restore.options) == {"backup_id": "bk-1"}


def test_code_blanks_comments_but_keeps_newlines() -> None:
    [chunk] = split_script("SHOW /* a\nb */ TABLES -- tail")
    assert chunk.text == "SHOW /* a\nb */ TABLES -- tail"
    assert chunk.code == "SHOW     \n     TABLES        "
    assert len(chunk.code) == len(chunk.text)


def _blanked_by_hand(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def test_a_run_of_comments_is_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request of 2,000,000 comments (8 MB) took the splitter 4-7 s: a
    step of Python for each comment, and a character at a time to blank it.
    A run of comments is now read by one regular expression a few thousand
    at a time, is one span of `comments`, and is blanked by slices; a
    comment nested deeper than two levels (which a regular expression cannot
    count) is read alone."""
    from sqlgrammar import splitter

    calls = []
    read_alone = splitter._comment_end
    monkeypatch.setattr(splitter, "_comment_end",
                        lambda sql, start: calls.append(start) or read_alone(sql, start))
    text = ("SELECT 1 " + "--x\n /* y\n */\t/* a /* b */ c */ " * 20_000
            + "+ 2 /* a /* b /* c */ */ d */ -- é\n/* ü */ AS n")
    (chunk,) = split_script(text + "; ")
    assert chunk.text == text
    assert len(calls) == 1  # the comment nested three levels deep
    runs = [chunk.text[a:b] for a, b in chunk.comments]
    assert runs == [text[9:text.index("+ 2")].rstrip(), "/* a /* b /* c */ */ d */ -- é\n/* ü */"]
    assert chunk.code == _blanked_by_hand(text, chunk.comments)
    assert chunk.code.split() == ["SELECT", "1", "+", "2", "AS", "n"]
    assert chunk.code.count("\n") == text.count("\n")
    (lone,) = split_script("SELECT 1 -- a lone CR ends it\r, 2")
    assert lone.code == "SELECT 1                     \r, 2"


def test_an_open_comment_after_a_run_is_named_where_it_starts() -> None:
    with pytest.raises(SqlSyntaxError) as caught:
        list(split_script("SELECT 1 -- x\n/* y */\n  /* open /* nested */"))
    assert (caught.value.line, caught.value.column) == (3, 3)
    assert "unterminated comment starting at line 3, column 3" in caught.value.message
