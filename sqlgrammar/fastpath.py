"""The two hottest statements without sqlglot's parser: the same tree, built directly.

Under load nearly every request is one of two shapes:

    INSERT INTO [ns.]t [(col, ...)] VALUES (value, ...)
    SELECT col, ... FROM [ns.]t WHERE col = value

where a value is an integer or decimal (optionally negative), a string, NULL,
TRUE or FALSE (in the WHERE: a number or a string). sqlglot spends ~0.1-0.2 ms
making a tokenizer and a parser and walking its grammar for them; this module
recognises exactly these shapes with one regular-expression tokenizer and
builds the tree sqlglot would build, node for node: the same classes, the same
arguments in the same order (None-valued ones too), the same position `meta`
on identifiers and literals. Everything after parsing (the sandbox allow-list,
role checks, name folding, USER-table isolation, type checks and their error
messages) then runs on that tree exactly as before.

Anything else returns None and goes the normal way: comments, quoted names,
E-strings, backslashes, casts, functions, expressions, several rows, any character
outside the few the shapes use, any whitespace but space, tab, CR and LF.

Whether sqlglot reads a word as a name depends on the word and where it
stands (`load` is one of its keywords and still a table name; `current_date`
is a function), so no word list decides it. Instead each statement's
*skeleton* (its tokens, with words upper-cased and literals reduced to their
kind) is checked once against sqlglot: the first statement of a skeleton is
parsed by both, and the skeleton is used only if the two trees are identical
(classes, arguments and their order, values, positions). sqlglot's parse does
not depend on the case of a word, the digits of a number, the characters of a
string or the blanks between tokens, so every later statement of that skeleton
gets the tree sqlglot would give it. `tests/sqlgrammar/test_fastpath.py` holds
that to sqlglot on seeded generated statements (valid and near-valid, with
spacing, case and literals varied); `bench/bench_fastpath.py` runs a large count."""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from .ast import ExponentNumber

__all__ = ["FastInsert", "FastSelect", "parse_fast", "parse_fast_lazy"]

_DUCKDB = Dialect.get_or_raise("duckdb")
# Skeleton -> the variant whose tree was identical to sqlglot's, or False. Bounded: a full
# map is emptied and fills again (4,096 shapes met must not shut later ones out for good).
_CHECKED: dict[tuple[Any, ...], int | bool] = {}  # variant, or False
MAX_SKELETONS = 4096

# One token each, after any blanks: word, number, string, punctuation. A
# number or word must not run on into a word character, a dot or a quote (1e5,
# 1_000, 1.2.3, 0x1F, E'...' all fall back); a string holds no backslash and
# ends at a quote that is not doubled. (Blanks as a possessive prefix of each
# match: half the matches, ~30% less time.) Runs are matched possessively (`++`,
# `*+`): one step per run, not per character, nothing to backtrack into (a 3 MB
# string took 0.73 s with `*` per character; 0.02 s so). `token_at` matches at
# a place: `finditer` searched on from every later place, retrying a run of
# blanks from each (8,000 trailing blanks: 6 s in one call holding the GIL).
_TOKEN = re.compile(
    r"""[ \t\r\n]*+(?:
        (?P<word>[A-Za-z_][A-Za-z0-9_]*)(?![A-Za-z0-9_'"$])
      | (?P<num>[0-9]+(?:\.[0-9]+)?)(?![A-Za-z0-9_.'"$])
      | (?P<str>'(?:[^'\\]++|'')*+')(?!')
      | (?P<punct>[(),.=;-]))""",
    re.VERBOSE,
)
token_at = _TOKEN.match
_WORD, _NUM, _STR, _PUNCT = 2, 3, 4, 5  # a token's kind: its group's number + 1

# No numeric literal may be longer (parser.py refuses it): no column type holds
# one, and past 4,300 digits Python's int() raises.
MAX_NUMBER_CHARS = 1000

Token = tuple[int, str, int, int]  # kind, text, start offset, end offset (exclusive)


# More tokens than this: not one row (a one-row INSERT of 250 columns), and a
# bulk INSERT of thousands of rows is not tokenized twice.
MAX_TOKENS = 512


def _tokens(sql: str, limit: int = MAX_TOKENS) -> list[Token] | None:
    """The statement's tokens without blanks, or None at anything unexpected."""
    out: list[Token] = []
    pos = 0
    while (m := token_at(sql, pos)) is not None:
        if len(out) >= limit:
            return None  # too long
        group = m.lastindex or 0
        pos = m.end()
        if group + 1 == _NUM and pos - m.start(group) > MAX_NUMBER_CHARS:
            return None  # the normal path refuses a literal this long (parser.py)
        out.append((group + 1, m.group(group), m.start(group), pos))
    return out if not sql[pos:].strip(" \t\r\n") else None  # blanks at most after the last


class _Lines:
    """Offsets -> sqlglot's (line, col): col is the 1-based column of a token's last character."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.multi = "\n" in sql

    def meta(self, start: int, end: int) -> dict[str, int]:
        last = end - 1
        if not self.multi:
            return {"line": 1, "col": last + 1, "start": start, "end": last}
        line = self.sql.count("\n", 0, last) + 1
        return {"line": line, "col": last - (self.sql.rfind("\n", 0, last) + 1) + 1,
                "start": start, "end": last}


class _Shape(Exception):
    """The text is not one of the two shapes."""


class _Reader:
    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.lines = _Lines(sql)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        if self.i >= len(self.tokens):
            raise _Shape
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> None:
        kind, text, _, _ = self.take()
        if kind != _WORD or text.upper() != word:
            raise _Shape

    def punct(self, char: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == _PUNCT and tok[1] == char:
            self.i += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.punct(char):
            raise _Shape

    def name(self) -> exp.Identifier:
        kind, text, start, end = self.take()
        if kind != _WORD:
            raise _Shape
        ident = exp.Identifier(this=text, quoted=False)
        ident.meta.update(self.lines.meta(start, end))
        return ident

    def number_or_string(self) -> exp.Expression:
        if self.punct("-"):
            kind, text, start, end = self.take()
            if kind != _NUM:
                raise _Shape
            return exp.Neg(this=self._literal(kind, text, start, end))
        kind, text, start, end = self.take()
        if kind not in (_NUM, _STR):
            raise _Shape
        return self._literal(kind, text, start, end)

    def value(self) -> exp.Expression:
        tok = self.peek()
        if tok is not None and tok[0] == _WORD:
            word = tok[1].upper()
            if word == "NULL":
                self.i += 1
                return exp.Null()
            if word in ("TRUE", "FALSE"):
                self.i += 1
                return exp.Boolean(this=word == "TRUE")
        return self.number_or_string()

    def _literal(self, kind: int, text: str, start: int, end: int) -> exp.Literal:
        if kind == _STR:
            lit = exp.Literal(this=text[1:-1].replace("''", "'"), is_string=True)
        else:
            lit = exp.Literal(this=text, is_string=False)
        lit.meta.update(self.lines.meta(start, end))
        return lit

    def table(self, with_catalog: bool) -> exp.Table:
        """`with_catalog`: sqlglot's `catalog=None` argument is there (INSERT
        always; a SELECT's FROM only for some namespace names, e.g. `load`,
        one of its keywords: a variant, see `parse_fast`)."""
        first = self.name()
        if self.punct("."):
            if with_catalog:
                return exp.Table(this=self.name(), db=first, catalog=None)
            table = exp.Table(this=self.name(), db=first)
        elif with_catalog:
            table = exp.Table(this=first, db=None, catalog=None)
        else:
            table = exp.Table(this=first)
        return table

    def end(self) -> None:
        self.punct(";")
        if self.i != len(self.tokens):
            raise _Shape


def _insert(r: _Reader, variant: int) -> exp.Insert:
    return insert_rows(r, variant, many=False)


def insert_rows(r: _Reader, variant: int, many: bool = True) -> exp.Insert:
    """An INSERT of one row or (`many`) of any number (fastrows.py), as sqlglot's."""
    r.keyword("INSERT")
    r.keyword("INTO")
    target: exp.Expression = r.table(with_catalog=True)
    if r.punct("("):
        names = [r.name()]
        while r.punct(","):
            names.append(r.name())
        r.expect(")")
        target = exp.Schema(this=target, expressions=names)
    r.keyword("VALUES")
    tuples = []  # rows
    while True:
        r.expect("(")
        values = [r.value()]
        while r.punct(","):
            values.append(r.value())
        r.expect(")")
        tuples.append(exp.Tuple(expressions=values))
        if not many or not r.punct(","):
            break
    r.end()
    rows = exp.Values(expressions=tuples, alias=None)
    return exp.Insert(
        hint=None, is_function=False, this=target, stored=False, by_name=False, exists=False,
        where=None, using=None, partition=False, settings=False, default=False,
        expression=rows, conflict=None, returning=None, overwrite=False, alternative=None,
        ignore=False, source=False,
    )


def _select(r: _Reader, variant: int) -> exp.Select:
    r.keyword("SELECT")
    columns = [exp.Column(this=r.name())]
    while r.punct(","):
        columns.append(exp.Column(this=r.name()))
    r.keyword("FROM")
    table = r.table(with_catalog=variant == 1)
    if variant == 1 and table.args.get("db") is None:
        raise _Shape  # the variant is about `ns.t` only
    r.keyword("WHERE")
    column = exp.Column(this=r.name())
    r.expect("=")
    where = exp.Where(this=exp.EQ(this=column, expression=r.number_or_string()))
    r.end()
    return exp.Select(
        kind=None, hint=None, distinct=None, expressions=columns, limit=None, exclude=None,
        operation_modifiers=None, from_=exp.From(this=table), where=where,
    )


def _skeleton(tokens: list[Token]) -> tuple[Any, ...]:
    return tuple(t[1].upper() if t[0] == _WORD else (t[1] if t[0] == _PUNCT else t[0])
                 for t in tokens)


def same_tree(a: Any, b: Any) -> bool:
    """Node for node the same: classes, argument names in order, values, meta
    (positions) and comments."""
    if type(a) is not type(b):
        return False
    if isinstance(a, exp.Expression):
        if list(a.args) != list(b.args) or a.meta != b.meta or a.comments != b.comments:
            return False
        return all(same_tree(a.args[k], b.args[k]) for k in a.args)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _sqlglot(text: str) -> Any:
    """sqlglot's one tree for `text`, or None (an error, or not one statement)."""
    try:
        trees = [t for t in _DUCKDB.parse(text) if t is not None]
    except Exception:  # the normal path reports it  # noqa: BLE001
        return None
    return trees[0] if len(trees) == 1 else None


# How many ways each shape can be built (`variant`): sqlglot's tree for the
# same tokens differs in a detail that depends on the words (see _Reader.table).
_BUILDERS = {"insert": (_insert, 1), "select": (_select, 2)}


@dataclass(frozen=True, slots=True)
class FastInsert:
    """A fast-path INSERT of literals without a tree: the names as written (not yet
    folded to lower case) and each row's values as `storage.values.literal` reads the
    tree's literals (NULL None, TRUE / FALSE a bool, a string unquoted, 1-38 digits an int, more
    the tree's, other numbers a Decimal, past 38 digits an ExponentNumber). Many: fastrows.py."""

    db: str | None
    table: str
    columns: list[str] | None
    rows: list[list[Any]]


_MAX_DIGITS = 100  # longer: the tree's (int() refuses past 4,300 digits, parser.py past 1,000)


def _number(text: str, negative: bool = False) -> Any:
    if len(text) > _MAX_DIGITS or (len(text) >= 39 and text.isdigit()):  # 39+: maybe past
        raise _Shape  # HUGEINT, which the tree's path refuses (storage/literal_range.py)
    if text.isdigit():
        return -int(text) if negative else int(text)
    if len(text) > 39:  # 39+ digits: a DOUBLE to DuckDB, as values.literal reads it
        return ExponentNumber.of("-" + text if negative else text)
    value = decimal.Decimal(text)  # exact: its `-` rounds to 28 digits (…567.8912345678 was …567.9)
    return value.copy_negate() if negative and value else value  # `-0.0`: DuckDB's 0.0 negated, 0.0


def describe_header(tokens: list[Token]) -> tuple[str | None, str, list[str] | None, int]:
    """db, table and columns as written of `INSERT INTO [db.]t [(c, ...)]`
    tokens of the shape `_insert` builds, and the index of the VALUES token."""
    i = 2  # INSERT INTO
    db, table = None, tokens[i][1]
    i += 1
    if tokens[i][0] == _PUNCT and tokens[i][1] == ".":
        db, table = table, tokens[i + 1][1]
        i += 2
    columns: list[str] | None = None
    if tokens[i][0] == _PUNCT and tokens[i][1] == "(":
        columns = []
        while tokens[i][1] != ")":  # "(" or ","
            columns.append(tokens[i + 1][1])
            i += 2
        i += 1
    return db, table, columns, i


def _describe_insert(tokens: list[Token]) -> FastInsert | None:
    """The typed description of an INSERT whose tokens have the shape `_insert`
    builds (checked before: a known skeleton, or the tree just built), else None."""
    try:
        db, table, columns, i = describe_header(tokens)
        i += 2  # VALUES (
        values: list[Any] = []
        while True:
            kind, text = tokens[i][0], tokens[i][1]
            if kind == _PUNCT:  # "-" and a number
                values.append(_number(tokens[i + 1][1], negative=True))
                i += 1
            elif kind == _NUM:
                values.append(_number(text))
            elif kind == _STR:
                values.append(text[1:-1].replace("''", "'"))
            else:  # a word is NULL, TRUE or FALSE here (`_Reader.value`)
                word = text.upper()
                values.append(None if word == "NULL" else word == "TRUE")
            if tokens[i + 1][1] == ")":
                break
            i += 2
    except (IndexError, _Shape):
        return None
    return FastInsert(db, table, columns, [values])


def _built(tree: Any) -> Callable[[], Any]:
    return lambda: tree


@dataclass(frozen=True, slots=True)
class FastSelect:
    """A fast-path point SELECT (`SELECT col, ... FROM [ns.]t WHERE key =
    literal`) as the server's one-row path reads it, without a tree: the
    names as written, the literal as its tree holds it (`text` unquoted,
    `is_string`, `negative` for a `-` before a number)."""

    db: str | None
    table: str
    columns: list[str]
    key: str
    text: str
    is_string: bool
    negative: bool


def _describe_select(tokens: list[Token]) -> FastSelect | None:
    """The typed description of a SELECT whose tokens have the shape `_select`
    builds (checked before), else None."""
    try:
        columns = [tokens[1][1]]
        i = 2
        while tokens[i][1] == ",":
            columns.append(tokens[i + 1][1])
            i += 2
        db, table = None, tokens[i + 1][1]  # FROM
        i += 2
        if tokens[i][0] == _PUNCT and tokens[i][1] == ".":
            db, table = table, tokens[i + 1][1]
            i += 2
        key = tokens[i + 1][1]  # WHERE key =
        i += 3
        negative = tokens[i][0] == _PUNCT  # "-" and a number
        kind, text = tokens[i + negative][0], tokens[i + negative][1]
    except IndexError:
        return None
    if kind == _STR:
        return FastSelect(db, table, columns, key, text[1:-1].replace("''", "'"), True, False)
    return FastSelect(db, table, columns, key, text, False, negative)


def _describe(kind: str, tokens: list[Token]) -> FastInsert | FastSelect | None:
    return _describe_insert(tokens) if kind == "insert" else _describe_select(tokens)


def parse_fast(sql: str) -> tuple[str, Any, int, int] | None:
    """(kind, sqlglot tree, start, end) for a request that is one statement of
    one of the two shapes (blanks around it, an optional `;` after it), else
    None. `sql[start:end]` is the statement's text as the splitter cuts it;
    positions in the tree count from `start`, as sqlglot's do in that text."""
    found = parse_fast_lazy(sql)
    if found is None:
        return None
    kind, build, _, start, end = found
    return kind, build(), start, end


def parse_fast_lazy(
    sql: str,
) -> tuple[str, Callable[[], Any], FastInsert | FastSelect | None, int, int] | None:
    """`parse_fast`, with the tree as a function that builds it (the tree
    of a known skeleton is built only if something asks for it) and, for a
    single-row INSERT, its typed description (`FastInsert`): what the
    server's one-row INSERT reads instead of the tree."""
    stripped = sql.lstrip(" \t\r\n")
    if not stripped or stripped[0] not in "IiSs":
        return None
    start = len(sql) - len(stripped)
    tokens = _tokens(stripped)
    if tokens is None:
        return None
    last = tokens[-1]
    if last[0] == _PUNCT and last[1] == ";":
        if len(tokens) < 2:
            return None
        last = tokens[-2]
    end = last[3]
    skeleton = _skeleton(tokens)
    known = _CHECKED.get(skeleton)
    if known is False:
        return None
    kind = "insert" if stripped[0] in "Ii" else "select"
    build, variants = _BUILDERS[kind]
    if known is not None:
        desc = _describe(kind, tokens)
        if desc is not None:
            variant = known

            def later() -> Any:  # the skeleton's tree was built before: no _Shape
                built = build(_Reader(stripped, tokens), variant)
                built.comments = []  # as sqlglot leaves a statement's root
                return built

            return kind, later, desc, start, start + end
        try:
            tree = build(_Reader(stripped, tokens), known)
        except _Shape:  # cannot happen: the skeleton was built before
            return None
        tree.comments = []  # as sqlglot leaves a statement's root
        return kind, _built(tree), None, start, start + end
    # First of its skeleton: sqlglot decides whether, and which variant.
    if len(_CHECKED) >= MAX_SKELETONS:
        _CHECKED.clear()
    theirs: Any = None
    for variant in range(variants):
        try:
            tree = build(_Reader(stripped, tokens), variant)
        except _Shape:
            _CHECKED[skeleton] = False
            return None
        tree.comments = []
        if theirs is None:
            theirs = _sqlglot(stripped[:end])
            if theirs is None:
                break
        if same_tree(tree, theirs):
            _CHECKED[skeleton] = variant
            return kind, _built(tree), _describe(kind, tokens), start, start + end
    _CHECKED[skeleton] = False
    return None
