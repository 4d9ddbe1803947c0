"""SQL text -> typed statements: the only door into `sqlgrammar`.

A request is split into statements (splitter.py); each is routed by its first
words: Cairn's own statements go to the LALR grammar in commands.lark, ordinary
SQL goes to sqlglot (DuckDB dialect) and comes back as `ast.Query`. Anything
sqlglot parses that is not SELECT/INSERT/UPDATE/DELETE comes back as
`Query(kind="other")` so the executor can refuse it; nothing is dropped silently.
Errors carry positions in the whole request, not in the statement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, cast

from lark import Lark, Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_interactive_parser import InteractiveParser
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError

from . import ast
from .chains import check_chains
from .duckparse import check_with_duckdb
from .errors import EmptySql, SqlInvalid, SqlSyntaxError, is_string_literal
from .fastpath import MAX_NUMBER_CHARS, FastInsert, parse_fast_lazy
from .fastrows import parse_rows_lazy
from .grammar_cache import cache_path
from .intervals import check_intervals
from .reprint import check_bang, check_operators, name_subqueries
from .splitter import Chunk, split_script
from .splitter import absolute as _absolute
from .transformer import ToAst
from .uncommented import Uncommented

__all__ = ["KEYWORDS", "iter_script", "parse_one", "parse_script"]

log = logging.getLogger(__name__)
# sqlglot's own lines quote the statement they are about ("'SHOW BACKUP … WITH
# (encryption_passphrase = …)' contains unsupported syntax"): a passphrase in
# the log. Nothing it says is news to a client (its errors are Cairn's).
logging.getLogger("sqlglot").setLevel(logging.CRITICAL + 1)

# ---- routing -------------------------------------------------------------------

# First words that always mean a Cairn statement.
_CAIRN_FIRST = {"SHOW", "DESCRIBE", "DESC", "FLUSH", "BACKUP", "RESTORE", "VERIFY", "KILL",
                "STOP"}
# First words that are Cairn's only with this second word (START TRANSACTION is SQL).
_CAIRN_FIRST_TWO = {("START", "ARCHIVING"), ("ATTACH", "BACKUPS")}
# CREATE / DROP / ALTER followed by one of DuckDB's other objects is ordinary SQL
# (refused later as kind "other"); any other second word is Cairn's, so a typo
# like CREATE NAMESPAC gets a syntax error rather than "not allowed".
_DUCKDB_OBJECTS = {
    "OR", "TEMP", "TEMPORARY", "PERSISTENT", "VIEW", "MATERIALIZED", "MACRO", "FUNCTION",
    "SEQUENCE", "INDEX", "UNIQUE", "SCHEMA", "TYPE", "SECRET", "DATABASE", "TRIGGER", "ROLE",
}
# First words of ordinary SQL (DuckDB). Words in neither set go to the grammar,
# whose error then lists what a statement may start with.
_SQL_FIRST = {
    "SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "VALUES", "FROM", "TABLE", "EXPLAIN",
    "COPY", "ATTACH", "DETACH", "PRAGMA", "SET", "RESET", "INSTALL", "FORCE", "LOAD",
    "EXPORT", "IMPORT", "CALL", "USE", "CHECKPOINT", "VACUUM", "ANALYZE", "BEGIN", "START",
    "COMMIT", "END", "ROLLBACK", "ABORT", "SUMMARIZE", "PIVOT", "UNPIVOT", "MERGE",
    "TRUNCATE", "REPLACE", "PREPARE", "EXECUTE", "DEALLOCATE", "COMMENT", "GRANT",
    "REVOKE", "UPSERT",
}
# Refused whatever they say (sandbox.check_query): never a syntax error about them.
_REFUSED_FIRST = {"COPY", "ATTACH", "DETACH", "PRAGMA", "INSTALL", "FORCE", "LOAD", "EXPORT",
                  "IMPORT", "CALL", "USE", "CHECKPOINT", "VACUUM", "GRANT", "REVOKE"}
# DESCRIBE followed by one of these describes a query, not a table.
_DESCRIBED_QUERY = {"SELECT", "WITH", "FROM", "VALUES", "PIVOT", "UNPIVOT"}
_EXPLAIN = re.compile(r"EXPLAIN\s+(?:(ANALYZE)\s+)?", re.IGNORECASE)
# Suggested alongside Cairn's keywords when the very first word is wrong.
_SQL_SUGGESTED = ["DELETE", "INSERT", "SELECT", "UPDATE", "WITH"]

_FIRST_WORDS = re.compile(r"\s*([A-Za-z_]+)(?:\s+([A-Za-z_]+))?")
# Top-level words of a statement, skipping strings, quoted names and parentheses.
_TOP_LEVEL = re.compile(r"""'[^']*(?:''[^']*)*'|"[^"]*(?:""[^"]*)*"|[()]|[A-Za-z_][A-Za-z0-9_]*""")


def _is_cairn(code: str) -> bool:
    """True for Cairn's own statements, decided on the first words only."""
    m = _FIRST_WORDS.match(code)
    if m is None:
        return not code.lstrip().startswith("(")
    first = m.group(1).upper()
    second = (m.group(2) or "").upper()
    if first in ("DESCRIBE", "DESC") and (
        second in _DESCRIBED_QUERY or code[m.end(1):].lstrip().startswith("(")
    ):
        return False  # DESCRIBE SELECT ...: the columns of a query (sqlglot)
    if first in _CAIRN_FIRST or (first, second) in _CAIRN_FIRST_TWO:
        return True
    if first in ("CREATE", "DROP", "ALTER"):
        if second in _DUCKDB_OBJECTS:
            return False
        # CREATE TABLE t AS SELECT ... is ordinary SQL (and refused later).
        return not (first == "CREATE" and second == "TABLE" and _has_top_level_as(code))
    return first not in _SQL_FIRST


def _has_top_level_as(code: str) -> bool:
    depth = 0
    for m in _TOP_LEVEL.finditer(code):
        tok = m.group()
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        elif depth == 0 and tok.upper() == "AS":
            return True
    return False


# ---- the grammar -----------------------------------------------------------------


class _AlwaysName:
    """Postlexer that only asks the contextual lexer to always try NAME.

    With NAME in every state's lexer, a word is always read whole and is then
    turned into a keyword only if it is exactly one that the state accepts, so
    `SHOW TABLESPACE` is an error at `TABLESPACE`, not `SHOW TABLES` + `PACE`."""

    always_accept = ("NAME",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


def _load_grammar() -> Lark:
    """Build the LALR parser once, cached in this user's own folder under the temp
    dir (grammar_cache: never the package); if caching fails, without the cache."""
    options: dict[str, Any] = dict(
        parser="lalr", propagate_positions=True, postlex=_AlwaysName(), transformer=ToAst(),
        maybe_placeholders=True,
    )
    try:
        return Lark.open("commands.lark", rel_to=__file__, cache=cache_path(), **options)
    except (OSError, EOFError, ValueError, AttributeError) as exc:
        log.warning("lark grammar cache unusable (%s); building without it", exc)
        return Lark.open("commands.lark", rel_to=__file__, **options)


def _check_coverage(lark: Lark) -> None:
    """Prove at import that every rule has a ToAst method. A missing one would
    otherwise only surface (via `__default__`) when some input reaches that rule."""
    missing = sorted(
        {r.alias or r.origin.name for r in lark.rules
         if not (r.options.expand1 or str(r.origin.name).startswith("_"))}
        - set(dir(ToAst))
    )
    if missing:
        raise RuntimeError(f"ToAst has no method for rules: {', '.join(map(str, missing))}")


_LARK = _load_grammar()
_check_coverage(_LARK)

# Every keyword of the grammar (upper case), e.g. for the printer's quoting.
KEYWORDS: frozenset[str] = frozenset(
    t.name[1:] for t in _LARK.terminals if t.name.startswith("_") and t.pattern.type == "str"
)

_HUMAN = {
    "LPAR": "(", "RPAR": ")", "COMMA": ",", "DOT": ".", "EQUAL": "=",
    "NAME": "name", "QUOTED_NAME": "name", "STRING": "string", "NUMBER": "number",
    "TYPE_NAME": "type",
    "$END": "end of statement",
}


def _human(terminals: Any) -> list[str]:
    return sorted({_HUMAN.get(t, t[1:] if t.startswith("_") else t) for t in terminals})


# ---- parsing one statement ---------------------------------------------------------


def _syntax_error(chunk: Chunk, what: str, line: int, column: int,
                  expected: list[str]) -> SqlSyntaxError:
    line, column = _absolute(chunk, line, column)
    message = f"unexpected {what} at line {line}, column {column}"
    if expected:
        shown = [e if e[0].isalpha() else repr(e) for e in expected]
        message += "; expected " + ("one of: " if len(shown) > 1 else "") + ", ".join(shown)
    return SqlSyntaxError(message, line, column, expected, chunk.index)


def _shown(text: str) -> str:
    if is_string_literal(text):  # never echo a string literal: it may be a passphrase
        return "string literal"
    return repr(text if len(text) <= 30 else text[:27] + "...")


def _from_lark(chunk: Chunk, exc: UnexpectedInput) -> SqlSyntaxError:
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        terminals = exc.accepts or exc.expected
        if tok.type == "$END":
            line, column, what = tok.end_line or 1, tok.end_column or 1, "end of statement"
        else:
            line, column, what = tok.line or 1, tok.column or 1, _shown(str(tok))
        expected = _human(terminals)
        if tok.start_pos in (0, None) and tok.type != "$END":
            expected = sorted(set(expected) | set(_SQL_SUGGESTED))
        return _syntax_error(chunk, what, line, column, expected)
    if isinstance(exc, UnexpectedCharacters):
        terminals = _accepts(exc)
        return _syntax_error(chunk, f"character {exc.char!r}", exc.line, exc.column,
                             _human(terminals))
    return _syntax_error(chunk, "input", exc.line, exc.column, [])


class _NoLexer:
    """Just enough of a lexer thread for InteractiveParser.accepts()."""

    _Token = Token


def _accepts(exc: UnexpectedCharacters) -> set[str]:
    """What the parser could take at a bad character (not what the lexer knows)."""
    if exc.state is None:
        return set(exc.allowed or ())
    interactive = InteractiveParser(None, exc.state.copy(), cast(Any, _NoLexer()))
    return set(cast(Any, interactive).accepts())


def _parse_cairn(chunk: Chunk) -> ast.Statement:
    try:
        result = cast(ast.Statement, _LARK.parse(chunk.code))
    except UnexpectedInput as exc:
        raise _from_lark(chunk, exc) from None
    except SqlInvalid as exc:
        exc.line, exc.column = _absolute(chunk, exc.line, exc.column)
        exc.statement = chunk.index
        raise
    return result


def _query_kind(expression: exp.Expression) -> str:
    if expression.find(exp.Into):  # SELECT ... INTO creates a table
        return "other"
    if isinstance(expression, (exp.Query, exp.Values)):
        return "select"
    if isinstance(expression, exp.Summarize):
        return "summarize"
    if isinstance(expression, exp.Describe) and isinstance(expression.this, exp.Query):
        return "describe"
    if isinstance(expression, exp.Pivot):
        return "pivot"
    if isinstance(expression, exp.Insert):
        return "insert"
    if isinstance(expression, exp.Update):
        return "update"
    if isinstance(expression, exp.Delete):
        return "delete"
    return "other"


def _parse_explain(chunk: Chunk) -> ast.Explain | None:
    """EXPLAIN [ANALYZE] <statement>: the statement is parsed from the same text
    with the prefix blanked, so error positions stay those of the request."""
    m = _EXPLAIN.match(chunk.code)
    if m is None:
        return None
    blank = re.sub(r"[^\n]", " ", chunk.text[:m.end()])
    inner = _parse_query(chunk, blank + chunk.text[m.end():])
    return ast.Explain(inner, analyze=m.group(1) is not None)


# One dialect object for every parse: `sqlglot.parse(read="duckdb")` builds a
# new one each call (~20-35 us of a 70-130 us parse). `Dialect.parse` makes a
# fresh tokenizer and parser per call, so sharing it is safe across threads.
_DUCKDB = Dialect.get_or_raise("duckdb")


# A digit right before a letter or `_`, or a run of more digits than a numeric
# literal may have: whether the tokens are read for a number with trailing junk
# (`0x16`, `1abc`) or too long (a run matched from its first digit: one pass).
_DIGIT_THEN_WORD = re.compile(rf"\d[A-Za-z_]|(?<![0-9.])[0-9.]{{{MAX_NUMBER_CHARS + 1}}}")
SEARCH_SLICE = 1 << 16  # characters a slice (`_found`)


def _found(pattern: re.Pattern[str], text: str, longest: int) -> bool:
    """Whether `pattern` (whose matches are at most `longest` characters) is
    in `text`, searched SEARCH_SLICE characters at a time: `re` holds the GIL
    through a whole search (0.7 s over a 9 MB statement, every other client's
    statement waiting), and between slices the interpreter lets other threads
    run. Each slice reaches `longest - 1` characters into the next, so no
    match is cut; a lookbehind still sees the characters before its slice."""
    return any(pattern.search(text, start, start + SEARCH_SLICE + longest - 1) is not None
               for start in range(0, max(len(text), 1), SEARCH_SLICE))


# sqlglot (mypyc-compiled) holds the GIL for a whole parse, ~5-20 us a token
# (quiet / loaded machine), and neither a thread nor a child process helps
# (unpickling its tree costs about as much as the parse): a statement of more
# tokens than this is refused (docs/sql.md, "Statement size"), so one client
# cannot hold every other client's statements for seconds. INSERTs of literal
# rows never get here (fastrows.py reads them without sqlglot).
MAX_PARSED_TOKENS = 50_000
# One match per token, left to right as a tokenizer reads: a comment (group 1
# empty), a string or quoted name (one token however long), a word, any other.
_TOKENISH = re.compile(  # an E'' string and a $$ quote are one token each, as '' is
    r"""(?:--[^\n\r]*+|/\*(?:[^*]++|\*(?!/))*+(?:\*/)?)|([eE]'(?:[^'\\]++|\\(?s:.)|'')*+'?"""
    r"""|\$([A-Za-z_\u0080-\U0010ffff][\w\u0080-\U0010ffff]*|)\$(?s:.*?)(?:\$\2\$|\Z)"""
    r"""|'(?:[^']++|'')*+'?|"(?:[^"]++|"")*+"?|[A-Za-z0-9_.$\u0080-\U0010ffff]++|\S)""")
TOO_COMPLEX = "statement too complex"


def _check_size(chunk: Chunk, source: str) -> None:
    """SqlInvalid if the statement has more than MAX_PARSED_TOKENS tokens (an
    estimate at C speed: a string literal counts as one, a comment as none).
    The count stops past the bound: `findall` over all of a 9 MB statement of
    4.5 million tokens held the GIL 1.3 s, every other client waiting."""
    if len(source) <= MAX_PARSED_TOKENS:  # fewer characters than the bound: fewer tokens
        return
    count = 0
    for m in _TOKENISH.finditer(source):
        if m.group(1) is not None:  # comments are no tokens
            count += 1
            if count > MAX_PARSED_TOKENS:
                raise SqlInvalid(
                    f"{TOO_COMPLEX}: more than the {MAX_PARSED_TOKENS} tokens one statement "
                    "may hold; split it into several statements, or write an INSERT's rows as "
                    "plain literals (numbers, strings, NULL, TRUE, FALSE), which have no such "
                    "bound", chunk.line, chunk.column, chunk.index)


def _parse_query(chunk: Chunk, text: str | None = None) -> ast.Query:
    """sqlglot's tree of an ordinary statement, read without its comments
    (uncommented.py), once it passes the checks of what sqlglot reads badly."""
    src = Uncommented(chunk.text if text is None else text, chunk.comments)
    source = src.text
    _check_size(chunk, source)
    check_chains(chunk, source)
    check_intervals(chunk, source)
    try:
        check_bang(chunk, src)  # `x ! IN (..)`: DuckDB's factorial, sqlglot's NOT (refused)
        if _found(_DIGIT_THEN_WORD, source, MAX_NUMBER_CHARS + 1):
            tokens = _DUCKDB.tokenize(source)
            _no_trailing_junk(chunk, src, tokens)
            parsed = _DUCKDB.parser().parse(tokens, source)
        else:
            parsed = _DUCKDB.parse(source)
        expressions = [e for e in parsed if e is not None]
        if len(expressions) != 1:
            raise SqlSyntaxError(
                f"expected one statement, found {len(expressions)}",
                chunk.line, chunk.column, [], chunk.index)
        expression = cast(exp.Expression, expressions[0])
        kind = _query_kind(expression)
        if kind != "other":  # "other" is refused whatever it says (server/queries.py)
            check_with_duckdb(chunk, src, expression)  # where sqlglot is more lenient
            check_operators(chunk, src, expression)  # where it reads otherwise
            name_subqueries(source, expression)  # named as written, not as reprinted
        return ast.Query(kind, expression)
    except ParseError as exc:
        if (word := _FIRST_WORDS.match(chunk.code)) and word.group(1).upper() in _REFUSED_FIRST:
            # not a syntax error of a form sqlglot can't read (asyncpg's `COPY … (FORMAT binary)`)
            return ast.Query("other", exp.Command(this=word.group(1).upper()))
        raise _from_sqlglot(chunk, exc, src) from None
    except (SqlglotError, RecursionError) as exc:  # tokenizer errors have no position
        message = "statement is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise SqlSyntaxError(message, chunk.line, chunk.column, [], chunk.index) from None


def _no_trailing_junk(chunk: Chunk, src: Uncommented, tokens: list[Any]) -> None:
    """Refuse a number with a word glued to it, and a number no DOUBLE holds.
    sqlglot (and DuckDB) read `0x16` as `0 AS x16` and `1abc` as `1 AS abc`, so
    `VALUES (0x16)` would store 0 without a word; PostgreSQL calls it trailing
    junk. DuckDB reads 1e309 as inf and 1e-400 as 0: out of range here. A
    literal of more than MAX_NUMBER_CHARS characters is refused: no column
    type holds one, and past 4,300 digits Python's int() raises."""
    for number, after in zip(tokens, tokens[1:] + [None], strict=False):
        if number.token_type.name != "NUMBER":
            continue
        line, column = _absolute(chunk, *src.position(number.line,
                                                      number.col - len(number.text) + 1))
        if (after is not None and after.start == number.end + 1
                and (after.text[:1].isalpha() or after.text[:1] == "_")):
            junk = src.text[number.start:after.end + 1]
            raise SqlSyntaxError(
                f"trailing junk after numeric literal at line {line}, column {column}: "
                f"{_shown(junk)} (write a number, or put a blank before the word)",
                line, column, [], chunk.index)
        if len(number.text) > MAX_NUMBER_CHARS:
            raise SqlInvalid(
                f"numeric literal {_shown(number.text)} at line {line}, column {column} "
                f"has {len(number.text)} characters; at most {MAX_NUMBER_CHARS}",
                line, column, chunk.index)
        if "e" in number.text.lower() and _lost_in_double(number.text):
            raise SqlInvalid(
                f"numeric literal {_shown(number.text)} at line {line}, column {column} "
                "is out of range for DOUBLE", line, column, chunk.index)


def _lost_in_double(text: str) -> bool:
    """Whether a literal with an exponent overflows a DOUBLE or underflows to 0."""
    try:
        value = float(text)
    except ValueError:  # `1e`: DuckDB says what is wrong with it
        return False
    mantissa = text.lower().split("e")[0]
    return value in (float("inf"), float("-inf")) or (
        value == 0.0 and any(c in "123456789" for c in mantissa))


def _from_sqlglot(chunk: Chunk, exc: ParseError, src: Uncommented) -> SqlSyntaxError:
    first = exc.errors[0] if exc.errors else {}
    line, column = first.get("line") or 1, first.get("col") or 1
    highlight = first.get("highlight") or ""
    if highlight and "\n" not in highlight:  # sqlglot's col is the token's last character
        column = max(1, column - len(highlight) + 1)
    what = _shown(highlight) if highlight else "input"
    description = str(first.get("description") or exc).split(". Line ")[0]
    description = re.sub(r"\s*but got <Token.*", "", description, flags=re.DOTALL)
    if description.startswith("Required keyword"):  # names a sqlglot class
        description = "incomplete expression"
    line, column = _absolute(chunk, *src.position(line, column))
    return SqlSyntaxError(
        f"unexpected {what} at line {line}, column {column}: {description}",
        line, column, _expecting(description), chunk.index)


def _expecting(description: str) -> list[str]:
    """sqlglot says 'Expecting )' or 'Expected table name'; keep that as the list."""
    m = re.match(r"Expect(?:ing|ed) (.+)", description)
    return [m.group(1)] if m else []


def _parse_chunk(chunk: Chunk) -> ast.ParsedStatement:
    statement: ast.Statement
    if _is_cairn(chunk.code):
        statement = _parse_cairn(chunk)
    else:
        statement = _parse_explain(chunk) or _parse_query(chunk)
    return ast.ParsedStatement(statement, chunk.text, chunk.index, chunk.line, chunk.column)


# ---- public ------------------------------------------------------------------------


# The fast path for a request that is one INSERT of literals (one row:
# fastpath.py, many: fastrows.py) or one point SELECT (fastpath.py). Off only
# in the tests that hold it to the normal path.
FAST_PATH = True


def _fast(sql: str) -> ast.ParsedStatement | None:
    """The request as the normal path would parse it, if it is one of the
    fast path's shapes: same tree, text, index, line and column."""
    found = parse_fast_lazy(sql) or parse_rows_lazy(sql)
    if found is None:
        return None
    kind, build, fast, start, end = found
    line = sql.count("\n", 0, start) + 1
    column = start - (sql.rfind("\n", 0, start) + 1) + 1
    tree = ast.Later(build) if fast is not None else build()
    small = not isinstance(fast, FastInsert) or len(fast.rows) == 1
    query = ast.Query(kind, tree, small=small, fast=fast)
    return ast.ParsedStatement(query, sql[start:end], 1, line, column)


def iter_script(sql: str) -> Iterator[ast.ParsedStatement]:
    """Parse statements one at a time, so a caller can run those before a bad one.

    Raises SqlSyntaxError / SqlInvalid (with `.statement` set) when it reaches a
    statement that fails, and EmptySql if the text holds no statement."""
    if FAST_PATH:
        fast = _fast(sql)
        if fast is not None:
            yield fast
            return
    empty = True
    for chunk in split_script(sql):
        empty = False
        yield _parse_chunk(chunk)
    if empty:
        raise EmptySql()


def parse_script(sql: str) -> list[ast.ParsedStatement]:
    """Parse a whole request; fails as a whole if any statement fails."""
    return list(iter_script(sql))


def parse_one(sql: str) -> ast.Statement:
    """Parse text that must hold exactly one statement."""
    parsed = parse_script(sql)
    if len(parsed) > 1:
        second = parsed[1]
        raise SqlSyntaxError(
            f"expected one statement, found {len(parsed)}",
            second.line, second.column, ["end of input"], second.index)
    return parsed[0].statement
