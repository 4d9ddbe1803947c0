"""DuckDB's own parser as a second reader of each query sqlglot reads.

Where sqlglot is more lenient than DuckDB and PostgreSQL it drops or re-reads
text without a word, and some of that wiped rows: `DELETE FROM ns.t WHERE k
NOT IN` (a statement cut short) was NOT (k IN ()) and deleted every row;
`UPDATE ns.t` rewrote every row; `DELETE FROM ns.t 'limit'`, `... ,`, `... *`
deleted every row; `VALUES (1, 'a') (2, 'b')` read the second row as column
names of the first and inserted one; `'a' 's'` was 'as' and `'a' in` 'false';
a second WHERE replaced the first. So the text of every statement sqlglot
reads (but those refused anyway, kind "other") is also read by DuckDB's
parser, which never runs it, and a syntax error there is one here, at the
token DuckDB names. sqlglot still builds the tree Cairn runs.

One exception: DuckDB refuses many keywords as bare names (`by`, `left`,
`end`, `order`) that sqlglot reads as a column or table name and Cairn then
writes quoted. Those stay names: when DuckDB refuses a statement that has
such names, it reads the text again with every column and table name
sqlglot found quoted (the same length plus two characters a name, no other
change), and only a refusal of that text counts. A table's alias is never
quoted so: `DELETE FROM ns.t LIMIT` stays an error.

Cost (bench/bench_parse.py): `extract_statements` takes ~15-35 us for a
short statement (~80 us of CPU in all beside sqlglot's parse, whose caches it
cools) and holds the GIL, ~0.6 ms a kilobyte of a long one; so a statement
longer than OFF_GIL_CHARS is read by `json_serialize_sql` in a query instead,
which costs ~0.3-0.5 ms more but runs without the GIL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb
from sqlglot import exp

from .errors import SqlSyntaxError, is_string_literal
from .splitter import Chunk, absolute
from .uncommented import Uncommented

__all__ = ["OFF_GIL_CHARS", "check_with_duckdb", "duckdb_refusal", "serialized"]

# Longer statements are read off the GIL (the query costs ~0.3-2 ms more).
OFF_GIL_CHARS = 4096
# A statement before the one read, so `json_serialize_sql` (which writes only
# SELECTs) stops after parsing instead of writing a long SELECT's tree out.
_NOT_A_SELECT = "CHECKPOINT;"
_SERIALIZE = "SELECT json_serialize_sql($1)"

# One database only for parsing (no table; no client's statement runs on it:
# extract_statements parses, json_serialize_sql parses its argument), made at
# the first use; a cursor per thread, as a DuckDB connection is not to be
# shared between threads.
_DB: list[duckdb.DuckDBPyConnection] = []
_LOCK = threading.Lock()
_LOCAL = threading.local()
# Bumped when the database is dropped for a new one: after an INTERNAL or
# FATAL error DuckDB leaves a database invalid for good, and every parse on
# it would fail (read as "no syntax error") until the server restarted.
_GENERATION = [0]
T = TypeVar("T")


def _cursor() -> duckdb.DuckDBPyConnection:
    cursor: duckdb.DuckDBPyConnection | None = getattr(_LOCAL, "cursor", None)
    if cursor is None or getattr(_LOCAL, "generation", None) != _GENERATION[0]:
        with _LOCK:
            if not _DB:
                _DB.append(duckdb.connect(config={
                    "errors_as_json": "true", "enable_external_access": "false",
                    "threads": "1"}))
            cursor = _DB[0].cursor()
            _LOCAL.generation = _GENERATION[0]
        _LOCAL.cursor = cursor
    return cursor


def _on_cursor(run: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """`run(cursor)`; if DuckDB failed internally (the database now invalid),
    the next call makes a new database, and a call that met the database
    another call invalidated is run again on a new one."""
    for attempt in (1, 2):
        try:
            return run(_cursor())
        except (duckdb.InternalException, duckdb.FatalException) as exc:
            with _LOCK:
                _DB.clear()
                _GENERATION[0] += 1
            if attempt == 2 or "has been invalidated" not in str(exc):
                raise
    raise AssertionError("unreachable")


# (character offset in the text read, the token there, DuckDB's message) of
# a syntax error, else None; no offset when DuckDB gives none.
Refusal = tuple[int | None, str, str]


def duckdb_refusal(text: str) -> Refusal | None:
    """Whether DuckDB's parser calls `text` (one statement) a syntax error.
    Errors of DuckDB's transformer after the syntax (`DATE()`, `$0`, VALUES
    rows of different widths) are left to the statement's run, as before."""
    try:
        return _refusal(text)
    except (UnicodeEncodeError, TypeError):  # a lone surrogate: read as '?' (one character)
        return _refusal(text.encode("utf-8", "replace").decode("utf-8"))


def _refusal(text: str) -> Refusal | None:
    if len(text) > OFF_GIL_CHARS:
        return _refusal_off_gil(text)
    try:
        _on_cursor(lambda cur: cur.extract_statements(text))
    except duckdb.ParserException as exc:
        return _syntax(text, str(exc), 0)
    except duckdb.Error:  # not the syntax (`COLLATE $1`): left to the statement's run
        return None
    return None


def serialized(text: str) -> dict[str, Any] | None:
    """DuckDB's parse tree of `text` (one SELECT), as json_serialize_sql gives
    it (positions in bytes of UTF-8), or None if it has none."""
    try:
        row = _on_cursor(lambda cur: cur.execute(_SERIALIZE, [text]).fetchone())
        answer = json.loads(row[0]) if row else None
    except (duckdb.Error, UnicodeEncodeError, TypeError, ValueError):
        return None
    return answer if isinstance(answer, dict) and not answer.get("error") else None


def _refusal_off_gil(text: str) -> Refusal | None:
    try:
        row = _on_cursor(lambda cur: cur.execute(_SERIALIZE, [_NOT_A_SELECT + text]).fetchone())
    except duckdb.Error:
        return None
    answer = json.loads(row[0]) if row else {}
    if answer.get("error_type") != "parser":
        return None  # "Only SELECT statements can be serialized": it parsed
    return _syntax(text, json.dumps(answer), len(_NOT_A_SELECT))


# DuckDB's refusals after the syntax that count as one: sqlglot ran
# `'abc'::VARCHAR[1:2]` as `CAST('abc' AS VARCHAR)[1:2]`, which DuckDB refuses
# ("wrap the cast in parentheses"); and `a IS DISTINCT FROM b IS DISTINCT FROM c`,
# which sqlglot ran as `(a IS DISTINCT FROM b) IS DISTINCT FROM c` (DuckDB: "chained
# comparisons are not supported").
_REFUSED = ("syntax error", "Subscript/slice cannot be applied directly after a cast",
            "Chained comparisons are not supported")


def _syntax(text: str, message: str, skip: int) -> Refusal | None:
    """The refusal in DuckDB's JSON error (errors_as_json), if a syntax error;
    DuckDB's location is in bytes of UTF-8, `skip` of them before `text`."""
    try:
        info = json.loads(message[message.index("{"):])
    except ValueError:
        info = {"exception_message": message}
    said = str(info.get("exception_message") or info.get("error_message") or message)
    if info.get("error_subtype") != "SYNTAX_ERROR" and not said.startswith(_REFUSED):
        return None
    try:
        start, length = (int(n) for n in json.loads(str(info["location"])))
    except (KeyError, ValueError, TypeError):
        return None, "", said
    raw = text.encode("utf-8")[:max(0, start - skip) + length]
    offset = len(raw[:max(0, start - skip)].decode("utf-8", "ignore"))
    return offset, raw[max(0, start - skip):].decode("utf-8", "ignore"), said


def check_with_duckdb(chunk: Chunk, src: Uncommented, expression: exp.Expression) -> None:
    """SqlSyntaxError where DuckDB's parser refuses `src.text` (the statement's
    text as sqlglot read it, without comments; positions as in the request)."""
    source = src.text
    refusal = duckdb_refusal(source)
    if refusal is None:
        return
    quoted = _names_quoted(source, expression)
    if quoted is not None:
        text, quotes = quoted
        again = duckdb_refusal(text)
        if again is None:
            return  # keywords sqlglot reads as names; the statement is DuckDB's too
        at, token, said = again
        if at is not None:  # back to the statement's own text
            token = token[1:-1] if at in quotes else token  # a name quoted here
            at -= sum(1 for q in quotes if q < at)
        refusal = at, token, said
    raise _error(chunk, src, refusal)


def _names_quoted(source: str, expression: exp.Expression) -> tuple[str, list[int]] | None:
    """`source` with each column and table name of sqlglot's tree quoted, and
    the offsets of the quotes added (in the new text); None if there is none."""
    spans = set()
    for ident in expression.find_all(exp.Identifier):
        if ident.quoted or not isinstance(ident.parent, (exp.Column, exp.Table, exp.Schema)):
            continue  # an alias (TableAlias, Alias) never: it is what a cut statement leaves
        start, end = ident.meta.get("start"), ident.meta.get("end")
        if start is not None and end is not None and source[start:end + 1] == ident.this:
            spans.add((start, end + 1))
    if not spans:
        return None
    parts, quotes, pos = [], [], 0
    for k, (start, end) in enumerate(sorted(spans)):
        parts += [source[pos:start], '"', source[start:end], '"']
        quotes += [start + 2 * k, end + 2 * k + 1]
        pos = end
    parts.append(source[pos:])
    return "".join(parts), quotes


def _error(chunk: Chunk, src: Uncommented, refusal: Refusal) -> SqlSyntaxError:
    at, token, said = refusal
    if at is None:  # DuckDB's words, unless they quote the text (it may be a secret)
        message = "syntax error" + ("" if "'" in said or '"' in said else f": {said}")
        return SqlSyntaxError(message, chunk.line, chunk.column, [], chunk.index)
    line, column = absolute(chunk, *src.line_column(at))
    near = f" at or near {_shown(token)}" if token else ""
    return SqlSyntaxError(f"syntax error{near} at line {line}, column {column}",
                          line, column, [], chunk.index)


def _shown(token: str) -> str:
    """A word, number, sign or `$n` as written; never a string's text (a passphrase)."""
    if is_string_literal(token):
        return "a string literal"
    return repr(token if len(token) <= 30 else token[:27] + "...")
