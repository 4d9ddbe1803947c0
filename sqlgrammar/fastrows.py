"""A multi-row INSERT of literals without sqlglot's parser (issue 15).

    INSERT INTO [ns.]t [(col, ...)] VALUES (value, ...), (value, ...), ...

sqlglot (mypyc-compiled here) holds the GIL for a whole parse: 4.5 s for a
10,000-row INSERT at load 11, during which no other client's statement runs,
and a thread does not help. This module reads such a statement the way
fastpath.py reads a one-row INSERT, with the same rules: the header (`INSERT
INTO ... VALUES`) is tokenized by fastpath's tokenizer, each row is matched
whole by one regular expression of the same token patterns (one C-speed match
per row, not one per token), and the values are read as `storage.values.
literal` reads the tree's literals. The result is fastpath's `FastInsert`
with every row, which the server writes through `dml.write_values` without a
tree; the tree is built only if something asks for it (`ast.Later`).

What decides that the fast reading is sqlglot's: a *row skeleton* (the
header's skeleton, as fastpath.py makes it, and each value's kind: a number,
a negative number, a string, NULL, TRUE, FALSE) is checked once against
sqlglot, on statements of 1, 2 and 3 copies of the first row of that skeleton:
the tree built here must equal sqlglot's node for node for each (so sqlglot's
tree for N rows is the N-row generalisation of the one-row tree, and the row
count is no part of the skeleton). Rows of different skeletons are parsed by
sqlglot independently of each other (a VALUES list is a list of tuples);
tests/sqlgrammar/test_fastrows.py holds whole mixed statements to sqlglot.

Anything else returns None and the normal path runs: a value that is not a
literal (now(), 1 + 2, a cast, DEFAULT), a comment, rows of different widths,
a number of more than 100 digits, more than MAX_NEW_SKELETONS unchecked row
skeletons in one statement, or a statement of fewer than 2 rows (fastpath.py
takes those)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import fastpath
from .fastpath import _PUNCT, _WORD, FastInsert, _Reader, _Shape, _tokens

__all__ = ["parse_rows_lazy"]

# (header skeleton, row skeleton) -> whether sqlglot agreed. Bounded as fastpath's.
_CHECKED: dict[tuple[Any, ...], bool] = {}
MAX_SKELETONS = 4096
# Unchecked row skeletons one statement may bring (each costs three small
# sqlglot parses); past it the statement goes the normal way.
MAX_NEW_SKELETONS = 8
# Header tokens at most (`INSERT INTO ns.t (c1, ..., cN) VALUES`).
MAX_HEADER = 600
# Values a row may have here: the row's pattern is compiled once per width
# (16 ms at 64, 1.6 s at 2,000 and 9 s at 8,000, on the event loop: a 16 KB
# INSERT of 8,000 values held every client that long, at every new width).
MAX_WIDTH = 64

_B = r"[ \t\r\n]*+"  # possessive: a failed match gives no blanks back to retry
# One value: fastpath._TOKEN's number, string and word patterns, a `-` before a number.
_VALUE = (_B + r"""(?:(?:(-)""" + _B + r""")?([0-9]+(?:\.[0-9]+)?)(?![A-Za-z0-9_.'"$])"""
          r"""|('(?:[^'\\]++|'')*+')(?!')"""
          r"""|([A-Za-z_][A-Za-z0-9_]*)(?![A-Za-z0-9_'"$]))""")
_ROW_RE: dict[int, re.Pattern[str]] = {}
_TAIL = re.compile(_B + r"(?:;" + _B + r")?\Z")
_COMMA = re.compile(_B + ",")

# A value's kind in a row skeleton.
_POS, _NEG, _TEXT, _NULL, _TRUE, _FALSE = range(6)
_WORDS = {"NULL": (_NULL, None), "TRUE": (_TRUE, True), "FALSE": (_FALSE, False)}


def _row_re(width: int) -> re.Pattern[str]:
    pattern = _ROW_RE.get(width)
    if pattern is None:
        pattern = re.compile(_B + r"\(" + _VALUE + (_B + "," + _VALUE) * (width - 1) + _B + r"\)")
        if len(_ROW_RE) < 1024:
            _ROW_RE[width] = pattern
    return pattern


def _header(sql: str) -> tuple[list[fastpath.Token], int] | None:
    """The tokens up to and including VALUES, and where the first row starts."""
    out: list[fastpath.Token] = []
    pos = 0
    while (m := fastpath.token_at(sql, pos)) is not None:
        if len(out) >= MAX_HEADER:
            return None
        group = m.lastindex or 0
        pos = m.end()
        out.append((group + 1, m.group(group), m.start(group), pos))
        if group + 1 == _WORD and m.group(group).upper() == "VALUES":
            return out, pos
        if group + 1 == _PUNCT and m.group(group) not in "(),.":
            return None
    return None


_OPEN = re.compile(_B + r"\(")
_ONE = re.compile(_VALUE)
_NEXT = re.compile(_B + r"([,)])")


def _width(sql: str, pos: int) -> int:
    """How many values the row at `pos` holds (0: not a row of literals)."""
    m = _OPEN.match(sql, pos)
    if m is None:
        return 0
    pos, width = m.end(), 0
    while True:
        v = _ONE.match(sql, pos)
        s = _NEXT.match(sql, v.end()) if v is not None else None
        if s is None:
            return 0
        width += 1
        pos = s.end()
        if s.group(1) == ")":
            return width


def _read(m: re.Match[str], width: int) -> tuple[tuple[int, ...], list[Any]]:
    """A matched row's skeleton and values (raises _Shape at anything else)."""
    g = m.groups()
    kinds: list[int] = []
    values: list[Any] = []
    for j in range(0, 4 * width, 4):
        num = g[j + 1]
        if num is not None:
            kinds.append(_POS if g[j] is None else _NEG)
            values.append(fastpath._number(num, negative=g[j] is not None))
            continue
        text = g[j + 2]
        if text is not None:
            kinds.append(_TEXT)
            values.append(text[1:-1].replace("''", "'"))
            continue
        kind, value = _WORDS.get(g[j + 3].upper(), (None, None))
        if kind is None:
            raise _Shape  # a word that is no literal: DEFAULT, a name, a function
        kinds.append(kind)
        values.append(value)
    return tuple(kinds), values


def _agrees(sql_header: str, row: str) -> bool:
    """sqlglot's tree of the header and 1, 2 and 3 copies of `row` is the one
    built here, node for node, for each."""
    for count in (1, 2, 3):
        text = sql_header + ",".join([row] * count)
        tokens = _tokens(text, limit=1_000_000)
        if tokens is None:
            return False
        try:
            tree = fastpath.insert_rows(_Reader(text, tokens), 0)
        except _Shape:
            return False
        tree.comments = []
        theirs = fastpath._sqlglot(text)
        if theirs is None or not fastpath.same_tree(tree, theirs):
            return False
    return True


def parse_rows_lazy(
    sql: str,
) -> tuple[str, Callable[[], Any], FastInsert, int, int] | None:
    """As `fastpath.parse_fast_lazy`, for an INSERT of two or more rows of
    literals: ("insert", a function building the tree, its FastInsert, the
    statement's start and end in `sql`), else None."""
    stripped = sql.lstrip(" \t\r\n")
    if not stripped or stripped[0] not in "Ii":
        return None
    start = len(sql) - len(stripped)
    head = _header(stripped)
    if head is None:
        return None
    header, pos = head
    key = fastpath._skeleton(header)
    width = _width(stripped, pos)
    if not width or width > MAX_WIDTH:
        return None
    row_re = _row_re(width)
    rows: list[list[Any]] = []
    new: dict[tuple[int, ...], str] = {}
    seen: set[tuple[int, ...]] = set()
    match = row_re.match
    try:
        while True:
            m = match(stripped, pos)
            if m is None:
                return None
            kinds, values = _read(m, width)
            if kinds not in seen:
                seen.add(kinds)
                known = _CHECKED.get((key, kinds))
                if known is False:
                    return None
                if known is None:
                    if len(new) >= MAX_NEW_SKELETONS:
                        return None
                    new[kinds] = m.group()
            rows.append(values)
            pos = m.end()
            c = _COMMA.match(stripped, pos)
            if c is None:
                break
            pos = c.end()
    except _Shape:
        return None
    if len(rows) < 2 or _TAIL.match(stripped, pos) is None:
        return None
    end = pos  # the last row's `)`: blanks and `;` after it are no part of the text
    head_text = stripped[:header[-1][3]]
    for kinds, row in new.items():
        if len(_CHECKED) >= MAX_SKELETONS:
            _CHECKED.clear()  # emptied and filled again, as fastpath's
        ok = _CHECKED[(key, kinds)] = _agrees(head_text, row)
        if not ok:
            return None
    try:
        db, table, columns, _ = fastpath.describe_header(header)
    except IndexError:
        return None
    text = stripped[:end]

    def later() -> Any:  # every row skeleton was built before: no _Shape
        tokens = _tokens(text, limit=len(text))
        built = fastpath.insert_rows(_Reader(text, tokens or []), 0)
        built.comments = []  # as sqlglot leaves a statement's root
        return built

    return "insert", later, FastInsert(db, table, columns, rows), start, start + end

