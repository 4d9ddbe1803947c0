"""Every fixture statement parses, prints back and parses again to the same dataclass,
also with its keywords in random case (sqlglot identity.sql / EvaDB style)."""

from __future__ import annotations

import dataclasses
import decimal
import pickle
import random
import re
from pathlib import Path

import pytest

from sqlgrammar import KEYWORDS, ast, parse_one, parse_script, to_sql
from sqlgrammar.transformer import TYPE_ALIASES

FIXTURE = Path(__file__).parent / "fixtures" / "statements.sql"
LINES = [
    line for line in FIXTURE.read_text().splitlines()
    if line.strip() and not line.startswith("--")
]

# Words whose case must not matter: the grammar's keywords, type names and the
# ordinary-SQL keywords used in the fixture. Names and strings are left alone.
SQL_WORDS = {
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "GROUP", "HAVING", "JOIN", "ON",
    "AS", "WITH", "UNION", "ALL", "VALUES", "INSERT", "INTO", "UPDATE", "SET", "DELETE",
    "COPY", "TO", "ATTACH", "PRAGMA", "INSTALL", "CREATE", "VIEW", "TABLE", "DROP",
    "DESC", "TRUE", "FALSE", "NULL", "COUNT",
}
CASE_INSENSITIVE = KEYWORDS | set(TYPE_ALIASES) | SQL_WORDS
_WORD_OR_QUOTED = re.compile(
    r"""'[^']*(?:''[^']*)*'|"[^"]*(?:""[^"]*)*"|--[^\n]*|/\*.*?\*/|[A-Za-z_][A-Za-z0-9_]*""")


def random_keyword_case(sql: str, rng: random.Random) -> str:
    """Scramble the case of keywords only; quoted text, comments and names stay."""

    def scramble(m: re.Match[str]) -> str:
        word = m.group()
        if word.upper() not in CASE_INSENSITIVE:
            return word
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)

    return _WORD_OR_QUOTED.sub(scramble, sql)


def test_fixture_is_big_enough() -> None:
    assert len(LINES) >= 80


def test_fixture_covers_every_statement_class() -> None:
    classes = {type(parse_one(line)) for line in LINES}
    expected = {
        cls for cls in vars(ast).values()
        if isinstance(cls, type) and issubclass(cls, ast.Statement) and cls is not ast.Statement
    }
    assert expected - classes == set()


def test_fixture_covers_every_query_kind() -> None:
    kinds = {s.kind for line in LINES if isinstance(s := parse_one(line), ast.Query)}
    assert kinds == {"select", "insert", "update", "delete", "summarize", "describe", "pivot",
                     "other"}


@pytest.mark.parametrize("sql", LINES)
def test_round_trip(sql: str) -> None:
    statement = parse_one(sql)
    printed = to_sql(statement)
    assert parse_one(printed) == statement
    assert to_sql(parse_one(printed)) == printed  # printing is a fixed point


@pytest.mark.parametrize("sql", LINES)
def test_random_keyword_case(sql: str) -> None:
    rng = random.Random(f"cairn:{sql}")  # deterministic per line
    scrambled = random_keyword_case(sql, rng)
    assert parse_one(scrambled) == parse_one(sql)
    assert parse_one(to_sql(parse_one(scrambled))) == parse_one(sql)


def test_scrambler_changes_case_but_not_strings() -> None:
    rng = random.Random(7)
    sql = "BACKUP DATABASE app TO 'Nightly TO' WITH (label = 'WITH')"
    out = random_keyword_case(sql, rng)
    assert out.upper() == sql.upper()
    assert "'Nightly TO'" in out and "'WITH'" in out
    assert out != sql


def test_whole_fixture_as_one_request() -> None:
    """The fixture joined into one request splits back into the same statements.

    Joined with newline + `;` (a line may end in a `--` comment), so statement i
    starts on line i, after the `;` in column 2 (the first in column 1)."""
    request = "\n;".join(LINES)
    parsed = parse_script(request)
    assert [p.statement for p in parsed] == [parse_one(line) for line in LINES]
    assert [p.text for p in parsed] == [line.rstrip() for line in LINES]
    assert [p.index for p in parsed] == list(range(1, len(LINES) + 1))
    assert [(p.line, p.column) for p in parsed] == [
        (i + 1, 1 if i == 0 else 2) for i in range(len(LINES))]


def test_canonical_text_examples() -> None:
    assert to_sql(parse_one("create user table if not exists A.B (X int primary key, "
                            "y varchar(3) not null default 'q') with (FLUSH_ROWS=5)")) == (
        "CREATE USER TABLE IF NOT EXISTS a.b (x INT PRIMARY KEY, y VARCHAR(3) NOT NULL "
        "DEFAULT 'q') WITH (flush_rows = 5)")
    assert to_sql(parse_one("desc t history")) == "DESCRIBE TABLE t HISTORY"
    assert to_sql(parse_one("alter table t add x integer")) == "ALTER TABLE t ADD COLUMN x INT"
    assert to_sql(parse_one("select 1 as A from T")) == "SELECT 1 AS A FROM T"


def test_parsed_values_are_plain_python() -> None:
    """Names are plain str (not lark Tokens) so they pickle and print cleanly."""
    stmt = parse_one("CREATE TABLE a.b (c INT DEFAULT 1) WITH (k = 'v', f = 1.5, n = NULL)")
    assert isinstance(stmt, ast.CreateTable)
    for value in (stmt.table.namespace, stmt.table.name, stmt.columns[0].name,
                  *(k for k, _ in stmt.options)):
        assert type(value) is str
    assert [type(v) for _, v in stmt.options] == [str, float, type(None)]
    assert dataclasses.replace(stmt) == stmt


def test_literals() -> None:
    stmt = parse_one(
        "CREATE TABLE t (a INT) WITH (s = 'it''s', i = -42, f = 2.50, e = 1E-3, p = +3, "
        "t = true, fa = FALSE, n = null, big = 123456789012345678901234567890)")
    assert isinstance(stmt, ast.CreateTable)
    assert ast.options_dict(stmt.options) == {
        "s": "it's", "i": -42, "f": 2.5, "e": 0.001, "p": 3, "t": True, "fa": False,
        "n": None, "big": 123456789012345678901234567890,
    }
    assert type(ast.options_dict(stmt.options)["i"]) is int
    assert type(ast.options_dict(stmt.options)["t"]) is bool


def test_a_default_number_is_exact() -> None:
    """A float held 12345678901234567890.1234567891 as 12345678901234567000 and
    9007199254740993.0 as 9007199254740992; options stay int or float."""
    stmt = parse_one("CREATE TABLE t (a DECIMAL(38,10) DEFAULT 12345678901234567890.1234567891, "
                     "b BIGINT DEFAULT -9007199254740993.0, c REAL DEFAULT 1e-46, "
                     "d INT DEFAULT 7) WITH (f = 0.5)")
    assert isinstance(stmt, ast.CreateTable)
    defaults = [c.default for c in stmt.columns]
    assert defaults == [decimal.Decimal("12345678901234567890.1234567891"),
                        decimal.Decimal("-9007199254740993.0"), decimal.Decimal("1e-46"), 7]
    assert [type(d) for d in defaults] == [decimal.Decimal] * 2 + [ast.ExponentNumber, int]
    assert isinstance(defaults[2], ast.ExponentNumber) and defaults[2].sql == "1e-46"  # a DOUBLE
    kept = pickle.loads(pickle.dumps(stmt))
    assert kept == stmt and kept.columns[2].default.sql == "1e-46"
    assert stmt.options == (("f", 0.5),) and type(stmt.options[0][1]) is float
    assert parse_one(to_sql(stmt)) == stmt
    assert "DEFAULT 12345678901234567890.1234567891" in to_sql(stmt)


def test_table_level_primary_key_marks_the_column() -> None:
    stmt = parse_one("CREATE TABLE t (a INT, b TEXT, PRIMARY KEY (b))")
    assert isinstance(stmt, ast.CreateTable)
    assert [(c.name, c.primary_key) for c in stmt.columns] == [("a", False), ("b", True)]


def test_types_are_canonical() -> None:
    stmt = parse_one(
        "CREATE TABLE t (a bool, b integer, c float, d double precision, e numeric(9), "
        "f varchar(7), g blob, h decimal)")
    assert isinstance(stmt, ast.CreateTable)
    assert [c.type for c in stmt.columns] == [
        ast.TypeSpec("BOOLEAN"), ast.TypeSpec("INT"), ast.TypeSpec("REAL"),
        ast.TypeSpec("DOUBLE"), ast.TypeSpec("DECIMAL", (9, 0)), ast.TypeSpec("TEXT", (7,)),
        ast.TypeSpec("BYTES"), ast.TypeSpec("DECIMAL"),
    ]
