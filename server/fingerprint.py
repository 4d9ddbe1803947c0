"""A statement's shape for the DuckDB fault quarantine (server/duckfaults.py),
read as DuckDB's lexer reads it, in one pass.

The pieces are those of DuckDB (PostgreSQL's lexer): a '...' string whose
only escape is '' (a backslash is a character: `'a\\'` is a whole string),
an E'...' string where a backslash escapes the next character too, a
$tag$...$tag$ string (a `$` right after a name's character is part of the
name), a "..." name ("" escapes), a -- comment to the end of the line, a
/* ... */ comment (nested). A regular expression that read `\\'` as an escape
let a crafted fault share an ordinary statement's shape; one that tried each
`$x$` as an opener with a lazy scan to the end took seconds per 100 KB. Here
each piece's end is found once, from where the piece starts, and the scan
goes on past it: linear in the text's length."""

from __future__ import annotations

import hashlib
import re

# What starts a piece (the scan jumps from one to the next): a quote, an
# E-string, a dollar quote, a comment.
_START = re.compile(r"""'|"|(?<![\w$])[eE]'|--|/\*"""
                    r"|(?<![\w$])\$(?:[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$")
_E_STOP = re.compile(r"['\\]")
_COMMENT_STOP = re.compile(r"/\*|\*/")
_NUMBER = re.compile(r"(?<![\w.$])(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")
_SPACES = re.compile(r"\s+")
_AROUND = re.compile(r" ?([^\w\s?]) ?")
_EXPLAIN = re.compile(r"^explain(?: analyze)? ")


def pieces(text: str) -> tuple[list[str], int]:
    """`text` as its code (lower case, numbers as `?`), its strings as `?`,
    comments as a space and quoted names as written; and the number of
    pieces scanned (each step consumes text: at most one per character)."""
    out: list[str] = []
    pos, steps, end = 0, 0, len(text)
    while pos < end:
        steps += 1
        m = _START.search(text, pos)
        if m is None:
            out.append(_code(text[pos:]))
            break
        out.append(_code(text[pos:m.start()]))
        opener = m.group()
        if opener == "'":
            pos, piece = _quoted(text, m.end(), "'"), "?"
        elif opener == '"':
            close = _quoted(text, m.end(), '"')
            pos, piece = close, text[m.start():close]
        elif opener[0] in "eE":
            pos, piece = _e_string(text, m.end()), "?"
        elif opener == "--":
            newline = text.find("\n", m.end())
            pos, piece = end if newline < 0 else newline, " "
        elif opener == "/*":
            pos, piece = _comment(text, m.end()), " "
        else:  # $tag$: to the same tag, or (unterminated) the end
            close = text.find(opener, m.end())
            pos, piece = end if close < 0 else close + len(opener), "?"
        out.append(piece)
    return out, steps


def _code(part: str) -> str:
    return _NUMBER.sub("?", part.lower())


def _quoted(text: str, pos: int, quote: str) -> int:
    """Past the closing `quote` of a piece whose only escape is a doubled one."""
    while True:
        close = text.find(quote, pos)
        if close < 0:
            return len(text)
        if text.startswith(quote, close + 1):
            pos = close + 2
            continue
        return close + 1


def _e_string(text: str, pos: int) -> int:
    """Past the closing quote of an E'...' string (backslash escapes)."""
    while True:
        m = _E_STOP.search(text, pos)
        if m is None:
            return len(text)
        if m.group() == "\\" or text.startswith("'", m.end()):
            pos = m.end() + 1
        else:
            return m.end()


def _comment(text: str, pos: int) -> int:
    """Past the */ that closes a /* comment (they nest, as in DuckDB)."""
    depth = 1
    while depth:
        m = _COMMENT_STOP.search(text, pos)
        if m is None:
            return len(text)
        depth += 1 if m.group() == "/*" else -1
        pos = m.end()
    return pos


def fingerprint(text: str, namespace: str | None, user: str | None) -> bytes:
    """The statement's shape (server/duckfaults.py), as a 20-byte digest:
    its literals `?`, comments dropped, lower case, spaces squeezed, with the
    request's namespace and the user. Quoted names are folded too: DuckDB's
    names ignore case."""
    shape = _SPACES.sub(" ", "".join(pieces(text)[0]).lower())
    shape = _EXPLAIN.sub("", _AROUND.sub(r"\1", shape).strip(" ;"))
    key = f"{user or ''}\0{namespace or ''}\0{shape}"
    return hashlib.sha1(key.encode(), usedforsecurity=False).digest()
