"""A bound on chained postfix operators, checked before sqlglot reads a statement.

sqlglot's parse of `x[1][1]...` and `x.f().f()...` costs time quadratic in the
length of the chain (at each `[` it walks the whole chain so far to apply
DuckDB's index offset): 2,000 subscripts in a 6 KB statement took 20 s, with
the GIL held, so every other client waited. A chain of more than
MAX_CHAINED_POSTFIX links is refused (docs/sql.md, "Statement size")."""

from __future__ import annotations

import re

from .errors import SqlInvalid
from .splitter import Chunk

MAX_CHAINED_POSTFIX = 64

# One match per token, as parser._TOKENISH reads them: comments skipped, a
# string or quoted name one token, a word (with its dots) one token.
_TOKEN = re.compile(r"""(?:--[^\n\r]*+|/\*(?:[^*]++|\*(?!/))*+(?:\*/)?)"""
                    r"""|('(?:[^']++|'')*+'?|"(?:[^"]++|"")*+"?|[A-Za-z0-9_.$]++|\S)""")
_OPEN = {"(": ")", "[": "]"}


def longest_chain(source: str) -> int:
    """The most links in one chain of postfix operators: a `[` subscript or a
    `.name` right after a closing `]` or `)` at the same nesting depth
    (`x[1][2]` has one link, `x.f().g()` one, `x[1].a[2]` two); a chain in
    parentheses goes on after them."""
    if source.count("[") + source.count(".") <= MAX_CHAINED_POSTFIX:
        return 0  # fewer possible links than the bound: skip the walk
    runs = [0]  # the current chain's links at each depth
    after_close = [False]  # whether the last token at each depth closed a bracket
    longest = 0
    for m in _TOKEN.finditer(source):
        tok = m.group(1)
        if tok is None:
            continue
        if after_close[-1] and (tok == "[" or tok.startswith(".")):
            runs[-1] += 1
            longest = max(longest, runs[-1])
        elif tok not in _OPEN:
            runs[-1] = 0 if tok not in (")", "]") else runs[-1]
        after_close[-1] = False
        if tok in _OPEN:
            runs.append(0)
            after_close.append(False)
        elif tok in (")", "]") and len(runs) > 1:
            inner = runs.pop()
            after_close.pop()
            after_close[-1] = True
            if tok == ")":  # `((x[1])[2])[3]` is one chain of three
                runs[-1] = max(runs[-1], inner)
    return longest


def check_chains(chunk: Chunk, source: str) -> None:
    """SqlInvalid if a chain in the statement is longer than the bound."""
    if longest_chain(source) > MAX_CHAINED_POSTFIX:
        raise SqlInvalid(
            f"statement too complex: a chain of more than {MAX_CHAINED_POSTFIX} subscripts or "
            "method calls (x[1][2]..., x.f().g()...); split it into steps",
            chunk.line, chunk.column, chunk.index)
