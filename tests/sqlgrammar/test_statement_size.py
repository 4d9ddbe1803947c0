"""A statement sqlglot would parse for seconds (holding the GIL, so every other
client waits) is refused beyond MAX_PARSED_TOKENS with a clear error; INSERTs
of literal rows (read without sqlglot) and long string literals have no such
bound."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

from catalog.errors import InvalidArgument
from server.pgwire.errors import sqlstate
from sqlgrammar import parser
from sqlgrammar.errors import SqlInvalid, SqlSyntaxError


def test_a_huge_select_is_refused_before_sqlglot_parses_it() -> None:
    text = "SELECT 1;\nSELECT " + ", ".join(f"a{i} + {i}" for i in range(20_000)) + " FROM t"
    statements = parser.iter_script(text)
    next(statements)  # the first statement is not held back by the second
    with pytest.raises(SqlInvalid) as caught:
        next(statements)
    assert caught.value.message.startswith("statement too complex: more than the 50000 tokens")
    assert (caught.value.statement, caught.value.line, caught.value.column) == (2, 2, 1)
    assert sqlstate(InvalidArgument(caught.value.message)) == "54000"


def test_an_insert_of_expressions_over_the_bound_is_refused() -> None:
    text = "INSERT INTO a.t VALUES " + ", ".join(f"({i}, now())" for i in range(10_000))
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script(text)


def test_literal_rows_and_long_strings_are_not_bound() -> None:
    rows = "INSERT INTO a.t VALUES " + ", ".join(f"({i}, 'x')" for i in range(20_000))
    assert len(parser.parse_script(rows)) == 1  # the fast path: no sqlglot, no bound
    long = "SELECT length('" + "word " * 100_000 + "') AS n"
    assert len(parser.parse_script(long)) == 1  # one token, however long


def test_e_strings_and_dollar_quotes_are_one_token_and_hide_none() -> None:
    """A `$$…$$` of 60,000 words was 'statement too complex' (its words counted)
    where the same text in '…' ran; a `\\'` in an E'' string (or a `'` in a $$
    quote) made the estimate read the rest as one string: 300,000 IN items
    after `E'\\''` parsed for 6 s where they are refused at once."""
    words = "word " * 60_000
    for text in (f"SELECT length($${words}$$) AS n", f"SELECT length($é${words}$é$) AS n",
                 f"SELECT length(E'{words}\\'') AS n"):
        assert len(parser.parse_script(text)) == 1, text[:30]
    items = ", ".join(["1"] * 60_000)
    for quoted in ("E'\\''", "$$'$$", "$t$ $$ ' $t$", "ée'\\'"):  # ée: a word, '\\' a string
        with pytest.raises(SqlInvalid, match="statement too complex"):
            parser.parse_script(f"SELECT {quoted} WHERE 1 IN ({items})")


def test_comments_are_no_tokens_and_hide_none() -> None:
    """The estimate reads left to right: a comment costs nothing, and a quote
    inside a comment does not hide the tokens after it."""
    assert [m.group(1) or "" for m in parser._TOKENISH.finditer("/* ' */ a, 'b -- c' -- d'\n e")
            ] == ["", "a", ",", "'b -- c'", "", "e"]
    padded = "SELECT 1 " + "/* " + "word " * 60_000 + "*/"
    assert len(parser.parse_script(padded)) == 1
    hidden = "SELECT /* ' */ " + ", ".join(["1"] * 30_000) + " /* ' */"
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script(hidden)
    after_cr = "SELECT 1 -- a lone CR ends it\r, " + ", ".join(["1"] * 60_000)
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script(after_cr)


def test_a_statement_far_over_the_bound_is_refused_without_reading_it_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The count stops past the bound: counting all 4.5 million tokens of a
    9 MB statement (the request limit is 10 MB) took 1.3 s in one `findall`
    holding the GIL, every other client waiting. Now it reads one past it."""
    tokenish = parser._TOKENISH
    read = []

    class Counting:
        def finditer(self, text: str) -> Any:
            for m in tokenish.finditer(text):
                read.append(m)
                yield m

    monkeypatch.setattr(parser, "_TOKENISH", Counting())
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script("SELECT " + "1 " * 4_500_000)
    assert len(read) == parser.MAX_PARSED_TOKENS + 1


def test_the_number_check_reads_a_long_statement_in_slices_and_finds_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`re` holds the GIL through a whole search: over a 9 MB statement the
    test for a digit before a letter (or a too-long number) held it 0.7 s. It
    searches 64 Ki characters at a time now, with the same answers: checked
    here with slices of a few characters, so many matches cross them."""
    import random

    rng = random.Random(15)
    longest = parser.MAX_NUMBER_CHARS + 1
    for size in (1, 7, 64):
        monkeypatch.setattr(parser, "SEARCH_SLICE", size)
        for _ in range(2000):
            text = "".join(rng.choice("0123456789.ab _'x\u0661") for _ in range(rng.randrange(80)))
            if rng.random() < 0.2:
                text += "1" * rng.randrange(longest - 3, longest + 3) + text
            want = parser._DIGIT_THEN_WORD.search(text) is not None
            assert parser._found(parser._DIGIT_THEN_WORD, text, longest) == want, (size, text)


def test_long_literals_in_cairn_statements_read_whole() -> None:
    """The command grammar's string and quoted-name patterns read a run of
    characters at a time (a 9 MB passphrase held the lexer 1.8 s, one
    character at a time); the strings are the same, doubled quotes and all."""
    secret = "p'q" * 1_000_000
    quoted = secret.replace("'", "''")
    (parsed,) = parser.parse_script(
        f"BACKUP DATABASE app TO 'x''y' WITH (encryption_passphrase = '{quoted}', label = '')")
    statement: Any = parsed.statement
    assert statement.target == "x'y"
    assert dict(statement.options) == {"encryption_passphrase": secret, "label": ""}


@pytest.mark.parametrize("text", [
    "SELECT 1 AS one" + " " * 8000,  # the fast path's point SELECT shape
    "SELECT 1 AS one;" + "\n" * 8000,
    "SELECT 1 AS one" + "\t" * 8000 + "#",  # a character no token takes
    "INSERT INTO a.t VALUES (1)" + " " * 8000,  # the fast path's rows
    "INSERT INTO a.t" + " " * 8000,  # the rows' header that never reaches VALUES
])
def test_long_runs_of_blanks_are_read_in_linear_time(text: str) -> None:
    """The fast path's tokenizer searched on from every position after a run
    of blanks no token followed, retrying the blanks from each: 8,000 trailing
    blanks took 6-9 s in one regex call holding the GIL (the whole server
    stalled; a 10 MB request of blanks, sent as 10 KB of gzip, for good)."""
    started = time.perf_counter()
    with contextlib.suppress(SqlInvalid, SqlSyntaxError):
        parser.parse_script(text)
    assert time.perf_counter() - started < 2.0  # linear: milliseconds; quadratic: 6-9 s


def test_a_nested_comment_hides_its_words_from_the_count() -> None:
    """Comments nest (DuckDB, PostgreSQL, the splitter): the token estimate
    ended one at the first `*/`, so a statement of one SELECT with a nested
    note in a long comment was refused "statement too complex". The estimate
    reads the statement as sqlglot does now, without its comments."""
    for note in ("", "/* nested note */ ", "/* a /* b */ c */ "):
        text = "SELECT 1 AS one /* disabled: " + note + "x " * 50_001 + "*/"
        (parsed,) = parser.parse_script(text)
        assert parsed.text == text
    hidden = "SELECT 1 /* a /* b */ c */, " + ", ".join(["1"] * 30_000)
    with pytest.raises(SqlInvalid, match="statement too complex"):
        parser.parse_script(hidden)  # what follows a nested comment still counts


class _Reading:
    """sqlglot's DuckDB dialect, keeping the length of every text it reads."""

    def __init__(self, dialect: Any) -> None:
        self.dialect, self.read = dialect, []

    def parse(self, text: str) -> Any:
        self.read.append(len(text))
        return self.dialect.parse(text)

    def tokenize(self, text: str) -> Any:
        self.read.append(len(text))
        return self.dialect.tokenize(text)

    def parser(self) -> Any:
        return self.dialect.parser()


@pytest.mark.parametrize("comments", ["--x\n" * 100_000, "/**/" * 100_000,
                                      "/* a /* b */ */" * 10_000, "-- é\n\t/* ü */ " * 10_000])
def test_sqlglot_reads_a_statement_without_its_comments(
        monkeypatch: pytest.MonkeyPatch, comments: str) -> None:
    """sqlglot's tokenizer holds the GIL over the whole text and keeps each
    comment in the tree, printed again into DuckDB's SQL: `SELECT 1` and
    2,000,000 `--` comments (8 MB) took 12-16 s, every other client's
    `SELECT 1` waiting up to 3 s. It reads each run of comments as a space."""
    reading = _Reading(parser._DUCKDB)
    monkeypatch.setattr(parser, "_DUCKDB", reading)
    for text in (f"SELECT 1 {comments}+ 2 AS n", f"SELECT 1 {comments}+ 2e0 AS n"):
        (parsed,) = parser.parse_script(text)
        statement: Any = parsed.statement
        assert statement.expression.sql(dialect="duckdb") in ("SELECT 1 + 2 AS n",
                                                               "SELECT 1 + 2e0 AS n")
        assert parsed.text == text
    assert reading.read and max(reading.read) < 30, reading.read


@pytest.mark.parametrize(("text", "where"), [
    ("SELECT /* one */ 1 /* two\n three */ , (2 -- x\n FROM ns.t WHERE", (3, 2)),
    ("SELECT 1; SELECT /* a */ 1abc /* b */ FROM ns.t", (1, 26)),  # trailing junk
    ("SELECT /* a */ 1 /* b */ 1e999", (1, 26)),  # out of range
    ("SELECT 1 AS a /* x */ FROM ns.t /* y */ WHERE a = 1 /* z */ LIMIT", (1, 61)),
    ("SELECT /* a */ * /* b */ FROM /* c */ ns.t /* d */ 'limit'", (1, 52)),  # DuckDB's
    ("DELETE /* c */ FROM ns.t\n-- comment\n  WHERE k NOT /* é */ IN", (3, 23)),  # DuckDB's
    ("SELECT /* é */ 1 /* ü */ FROM ns.t WHERE k = 'x' /* ñ */ AND AND", (1, 62)),
    ("EXPLAIN /* c */ SELECT /* d */ 1 +", (1, 34)),
    ("SELECT 1 /* a /* nested */ b */ + /* c */ FROM", (1, 43)),
])
def test_errors_after_comments_keep_their_place(text: str, where: tuple[int, int]) -> None:
    """Positions sqlglot and DuckDB's parser give in the text without comments
    are those of the request."""
    with pytest.raises((SqlSyntaxError, SqlInvalid)) as caught:
        parser.parse_script(text)
    assert (caught.value.line, caught.value.column) == where, caught.value.message
    assert f"at line {where[0]}, column {where[1]}" in caught.value.message
