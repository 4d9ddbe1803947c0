"""Cut a request into statements at the `;` that really end them.

A `;` inside a string ('it''s;'), E-string (E'\\';'), dollar-quoted string
($$;$$), quoted identifier ("a;b"), `--` comment or (nested) `/* */` comment
does not split. Each chunk also gets a copy of its text with the comments
blanked to spaces (newlines kept), so the grammar needs no comment rule and
positions stay the same, and where its runs of comments are (`comments`), so
sqlglot can read it without them (uncommented.py).

A run of comments is read a few thousand at a time by one regular
expression, and blanked by slices, not a character at a time: 2,000,000
comments in an 8 MB request took seconds of Python here before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import SqlSyntaxError

# Things that change the scanner's state; everything else is ordinary text.
# A dollar quote's tag, as DuckDB's (PostgreSQL's) scanner reads one: letters
# past ASCII too (`$é$…$é$`: its `/* */` was taken for a comment and dropped).
_TAG = r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$"
_SPECIAL = re.compile(r"""[;'"]|--|/\*|""" + _TAG)
_NON_BLANK = re.compile(r"[^\s\ufeff]")  # a leading byte-order mark is blank too
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]")
_QUOTED = {"'": re.compile(r"'[^']*(?:''[^']*)*'"), '"': re.compile(r'"[^"]*(?:""[^"]*)*"')}
# Unrolled, as _QUOTED: a run at a time (a 9 MB E'' string: 1.2 s holding the GIL, now 0.07).
_E_STRING = re.compile(r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.DOTALL)
_COMMENT_EDGE = re.compile(r"/\*|\*/")
_LINE_END = re.compile(r"[\n\r]")  # where a `--` comment ends
# A run of comments with blanks between them, up to 4,096 of them a match (so
# one match holds the GIL briefly): `--` to the line's end, `/* */` with at
# most one level of `/* */` inside (one nested deeper ends the run;
# `_comment_end` counts its levels).
_FLAT = r"/\*(?:[^*/]++|\*(?!/)|/(?!\*))*+\*/"
_ONE_COMMENT = rf"(?:--[^\n\r]*+|/\*(?:[^*/]++|\*(?!/)|/(?!\*)|{_FLAT})*+\*/)"
_COMMENT_RUN = re.compile(rf"{_ONE_COMMENT}(?:[ \t\n\r]*+{_ONE_COMMENT}){{0,4095}}")
_NEXT_COMMENT = re.compile(r"[ \t\n\r]*+(?=--|/\*)")
# Every byte but a newline -> a blank (a run of ASCII comments blanked at C speed).
_BLANK_BYTES = bytes(10 if b == 10 else 32 for b in range(256))


@dataclass(frozen=True)
class Chunk:
    """One statement as cut from the request."""

    index: int  # 1-based position among the non-empty statements
    start: int  # offset of its first token in the request
    line: int  # 1-based line of its first token
    column: int  # 1-based column of its first token
    text: str  # the original text, first token to last, trailing blanks removed
    code: str  # `text` with comments replaced by spaces
    # (start, end) in `text` of each run of comments (and the blanks between them)
    comments: tuple[tuple[int, int], ...] = ()


def absolute(chunk: Chunk, line: int, column: int) -> tuple[int, int]:
    """Statement-relative position -> position in the whole request."""
    if line <= 1:
        return chunk.line, chunk.column + column - 1
    return chunk.line + line - 1, column


class _Lines:
    """Offset -> (line, column), both 1-based, counting characters like Lark does.
    Lines are counted from the last offset asked (they are asked in order), at
    C speed: a list of every line's start cost 2,000,000 steps of Python for
    a request of 2,000,000 `--` comments."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at, self.line = 0, 1

    def position(self, offset: int) -> tuple[int, int]:
        if offset < self.at:
            self.at, self.line = 0, 1
        self.line += self.text.count("\n", self.at, offset)
        self.at = offset
        return self.line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1


def blanked(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    """`text` with each span's characters but newlines replaced by spaces."""
    if not spans:
        return text
    parts: list[str] = []
    prev = 0
    for start, end in spans:
        piece = text[start:end]
        parts.append(text[prev:start])
        if "\n" not in piece:
            parts.append(" " * len(piece))
        elif piece.isascii():
            parts.append(piece.encode("ascii").translate(_BLANK_BYTES).decode("ascii"))
        else:
            parts.append("\n".join(" " * len(line) for line in piece.split("\n")))
        prev = end
    parts.append(text[prev:])
    return "".join(parts)


def split_script(sql: str) -> Iterator[Chunk]:
    """Yield the request's statements one by one.

    A generator so that statements before an unterminated string are still
    handed out; the error is raised when the scan reaches it."""
    lines = _Lines(sql)
    index = 0
    first: int | None = None  # offset of the current statement's first token
    comments: list[tuple[int, int]] = []  # comment spans inside the current statement
    pos = 0
    n = len(sql)

    def unterminated(what: str, at: int, closer: str) -> SqlSyntaxError:
        line, column = lines.position(at)
        return SqlSyntaxError(
            f"unterminated {what} starting at line {line}, column {column}; expected {closer}",
            line, column, [closer], index + 1)

    def chunk(end: int) -> Chunk | None:
        nonlocal index
        if first is None:
            return None
        index += 1
        text = sql[first:end].rstrip()
        spans = tuple((c_start - first, min(c_end - first, len(text)))
                      for c_start, c_end in comments)
        line, column = lines.position(first)
        return Chunk(index, first, line, column, text, blanked(text, spans), spans)

    while pos < n:
        m = _SPECIAL.search(sql, pos)
        stop = m.start() if m else n
        if first is None:
            blank = _NON_BLANK.search(sql, pos, stop)
            if blank:
                first = blank.start()
        if m is None:
            break
        tok = m.group()
        start = m.start()
        if tok in ("--", "/*"):
            end, open_at = _comments_end(sql, start)
            if end < 0:
                raise unterminated("comment", open_at, "*/")
            if first is not None:
                comments.append((start, end))
            pos = end
            continue
        if first is None and tok != ";":
            first = start
        if tok == ";":
            done = chunk(start)
            if done is not None:
                yield done
            first, comments = None, []
            pos = start + 1
        elif tok == "'":
            backslashes = start > 0 and sql[start - 1] in "eE" and (
                start < 2 or not _IDENT_CHAR.match(sql[start - 2]))
            end = _quoted_end(sql, start, "'", backslashes)
            if end < 0:
                raise unterminated("string", start, "'")
            pos = end
        elif tok == '"':
            end = _quoted_end(sql, start, '"', False)
            if end < 0:
                raise unterminated("quoted name", start, '"')
            pos = end
        elif start > 0 and _IDENT_CHAR.match(sql[start - 1]):
            pos = start + 1  # a `$` inside a word, not a dollar quote
        else:
            close = sql.find(tok, start + len(tok))
            if close < 0:
                raise unterminated("dollar-quoted string", start, tok)
            pos = close + len(tok)
    done = chunk(n)
    if done is not None:
        yield done


def _quoted_end(sql: str, start: int, quote: str, backslashes: bool) -> int:
    """Offset just past the closing quote (a doubled quote is an escape), or -1."""
    pattern = _E_STRING if backslashes else _QUOTED[quote]
    m = pattern.match(sql, start)
    return m.end() if m else -1


def _comments_end(sql: str, start: int) -> tuple[int, int]:
    """(offset just past the run of comments starting at `start`, with blanks
    between them, -1); (-1, where) if a comment in it is not closed."""
    pos = start
    while True:
        m = _COMMENT_RUN.match(sql, pos)
        if m is not None:
            pos = m.end()
        else:  # a nested `/* */`
            end = _comment_end(sql, pos)
            if end < 0:
                return -1, pos
            pos = end
        gap = _NEXT_COMMENT.match(sql, pos)
        if gap is None:
            return pos, -1
        pos = gap.end()


def _comment_end(sql: str, start: int) -> int:
    """Offset just past a comment; `/* */` nests as in DuckDB and Postgres. -1 if open.
    A `--` comment ends at a newline or a lone carriage return, as PostgreSQL's
    scanner (`non_newline [^\\n\\r]`), DuckDB and sqlglot end it: text after a CR
    is code there, so it must be code here too (a `WITH (...)` after `-- x\\r`
    was blanked, and a backup asked to be encrypted ran unencrypted)."""
    if sql.startswith("--", start):
        m = _LINE_END.search(sql, start)
        return len(sql) if m is None else m.start()
    depth = 0
    for m in _COMMENT_EDGE.finditer(sql, start):
        depth += 1 if m.group() == "/*" else -1
        if depth == 0:
            return m.end()
    return -1


_SPECIAL_OR_PARAM = re.compile(r"""[;'"]|--|/\*|\$\d+|""" + _TAG)


def parameters(sql: str) -> list[tuple[int, int, int]]:
    """(start, end, n) of every `$n` parameter that is code, by the same rules
    that cut statements: never inside a string, E-string, dollar-quoted string,
    quoted name or comment, nor inside a word. Stops at anything unterminated
    (the statement's own parse reports it)."""
    out: list[tuple[int, int, int]] = []
    pos, n = 0, len(sql)
    while pos < n:
        m = _SPECIAL_OR_PARAM.search(sql, pos)
        if m is None:
            break
        tok, start = m.group(), m.start()
        in_word = start > 0 and _IDENT_CHAR.match(sql[start - 1]) is not None
        if tok in ("--", "/*"):
            end = _comments_end(sql, start)[0]
        elif tok == ";":
            end = start + 1
        elif tok in ("'", '"'):
            backslashes = tok == "'" and start > 0 and sql[start - 1] in "eE" and (
                start < 2 or not _IDENT_CHAR.match(sql[start - 2]))
            end = _quoted_end(sql, start, tok, backslashes)
        elif in_word:
            end = start + 1
        elif tok[1:].isdigit():
            out.append((start, m.end(), int(tok[1:])))
            end = m.end()
        else:
            close = sql.find(tok, start + len(tok))
            end = close + len(tok) if close >= 0 else -1
        if end < 0:
            break
        pos = end
    return out


def comment_runs(sql: str) -> tuple[tuple[int, int], ...]:
    """(start, end) in `sql` of each run of comments after a statement's
    first token (`Chunk.comments`, in the whole text); none if the text does
    not split (an open quote or comment: its parse says so)."""
    try:
        return tuple((c.start + a, c.start + b) for c in split_script(sql) for a, b in c.comments)
    except SqlSyntaxError:
        return ()
