"""Bind parameters ($1, $2, ...) as typed SQL literals.

Where a `$n` is code (not inside a string, quoted name or comment) is decided
by the rules that cut a request into statements (`sqlgrammar.splitter`). Each
value becomes a literal printed by sqlglot (strings quoted and escaped by it),
so a parameter is always exactly one literal token: no value can change the
statement around it; and a `$n` where a name must stand (`FROM ns.$1`, where
a string literal is read as the table's name) is refused at Parse, 42601.
Positions are found once per statement text (cached for texts of up to 16 KiB).

Types of parameters a client left open (OID 0) are inferred from the query:
a cast, the column it is compared with, the INSERT column it fills, LIMIT;
columns bound to their tables as SQL scopes bind them (param_columns.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import math
import re
from collections.abc import Callable
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from catalog.errors import InvalidArgument
from sqlgrammar.fastpath import MAX_NUMBER_CHARS
from sqlgrammar.splitter import comment_runs, parameters
from sqlgrammar.uncommented import Uncommented
from storage import timetext
from storage.types import coerce

from . import arrays, numeric_casts, param_columns
from . import types as t
from .param_guess import Target, guess, number, place_kind, target_of

MAX_PARAMS = 65535


class PlaceholderError(ValueError):
    """`$0`, a gap in the numbering, or too many parameters (42P02 / 08P01)."""


MAX_CACHED_CHARS = 16 * 1024  # longer texts are not cached: 512 of 10 MB each were kept for good


def placeholders(sql: str) -> tuple[tuple[int, int, int], ...]:
    """(start, end, number) of every `$n` that is code, in text order."""
    return _cached(sql) if len(sql) <= MAX_CACHED_CHARS else _placeholders(sql)


@functools.lru_cache(maxsize=512)
def _cached(sql: str) -> tuple[tuple[int, int, int], ...]:
    return _placeholders(sql)


def _placeholders(sql: str) -> tuple[tuple[int, int, int], ...]:
    spots = tuple(parameters(sql))
    for start, end, n in spots:
        if not 1 <= n <= MAX_PARAMS:
            raise PlaceholderError(f"there is no parameter ${n}")
        # A string beside a `$n`, blanks between: written in as a literal, the
        # value joined it (`$1` newline `'x'` was 'ax'; `$1'x'` one string),
        # where PostgreSQL and DuckDB read a syntax error.
        if _STRING_NEXT.match(sql, end) or _string_before(sql, start):
            raise MisplacedParameter(n, start + 1)
    return spots


_STRING_NEXT = re.compile(r"\s*'")


def _string_before(sql: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and sql[i].isspace():  # each run of blanks is walked once in all
        i -= 1
    return i >= 0 and sql[i] == "'"


def count(sql: str) -> int:
    return max((n for _, _, n in placeholders(sql)), default=0)


def literal(value: Any, oid: int = 0) -> str:
    """One value as a DuckDB literal. Strings are printed by sqlglot."""
    if value is None:
        return "NULL"
    if isinstance(value, arrays.PgArray):
        return value.literal(literal)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    # A negative number is parenthesized: after a `-` in the text (`balance-$1`)
    # a bare `-50` made `--50`, a comment to the end of the line (an UPDATE's
    # WHERE with it: every row changed).
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    if isinstance(value, t.Float4):
        return f"CAST({_string(value.text)} AS REAL)"
    if isinstance(value, float):
        # A float4, -0.0, nan and inf are typed from their text (repr): DuckDB
        # reads `(-0.0)` as the DECIMAL 0.0 negated, +0.0 (so it was in UPDATE …
        # SET, INSERT … SELECT, `$1::DOUBLE`; a float4 everywhere).
        negative_zero = value == 0.0 and math.copysign(1.0, value) < 0
        if oid == t.FLOAT4 or negative_zero or not math.isfinite(value):
            return f"CAST({_string(repr(value))} AS {'REAL' if oid == t.FLOAT4 else 'DOUBLE'})"
        text = repr(value)
        return f"({text})" if text.startswith("-") else text
    if isinstance(value, decimal.Decimal):
        if value.is_finite():
            text = _plain(value)
            if sum(ch.isdigit() for ch in text) > 38:
                return _exact(text)
            return f"({text})" if text.startswith("-") else text
        return f"CAST({_string(str(value).lower())} AS DOUBLE)"
    if isinstance(value, bytes):
        return f"from_hex({_string(value.hex())})"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"CAST({_string(value.isoformat(sep=' '))} AS TIMESTAMP)"
    if isinstance(value, dt.date):
        return f"CAST({_string(value.isoformat())} AS DATE)"
    text = str(value)
    if oid in (t.TIMESTAMPTZ, t.TIMESTAMP, t.DATE) and text.strip().lower() in _INFINITY:
        # As PostgreSQL reads it (a timestamp's was 22P02); a column refuses it (check()).
        infinity = "-infinity" if text.strip().startswith("-") else "infinity"
        return f"CAST({_string(infinity)} AS {'DATE' if oid == t.DATE else 'TIMESTAMP'})"
    if oid in (t.TIMESTAMPTZ, t.TIMESTAMP, t.DATE):
        return _time_literal(text, oid)
    if oid in (t.JSON, t.JSONB):
        return f"CAST({_string(text)} AS JSON)"
    return _string(text)


_INFINITY = ("infinity", "+infinity", "-infinity")


def _time_literal(text: str, oid: int) -> str:
    """Date or time text read as an HTTP literal of it is (storage/timetext.py:
    only the forms DuckDB's CAST reads alike). `fromisoformat` also read
    '20240601', '2024-W23-6' (as 2024-06-08), '2024-06-01T12', and DuckDB's
    CAST read a DATE's '2024-06-01 BC' as the AD day: rows stored so, or
    matched, that the same text over HTTP refuses. A timestamp with a zone is
    converted to UTC (a timestamptz's reading); a date takes its day as written."""
    kind = "date" if oid == t.DATE else "timestamp"
    try:
        value: dt.date | None = timetext.date_of(text) if oid == t.DATE else None
        value = value or timetext.time_of(text)
    except ValueError:  # 2024-02-30, 25:00
        value = None
    if value is None:
        raise t.BadParameter(f"invalid input syntax for type {kind}: {text[:40]!r}")
    if oid == t.DATE and isinstance(value, dt.datetime):
        value = value.date()
    try:
        return literal(value)
    except OverflowError:  # in range, but not once converted to UTC
        raise t.BadParameter(f"timestamp out of range: {text[:40]!r}", "22008") from None


def _plain(value: decimal.Decimal) -> str:
    """A finite number written out with no exponent, or 22003 if no column
    type holds that many digits, found before they are written out:
    `1e200000000` is 12 bytes as a NUMERIC parameter and 200 MB of digits (30 s
    of the event loop to build; the parser then refuses any number literal
    past MAX_NUMBER_CHARS). Counted without a Python step per digit (a 9 MB
    parameter's digits joined one by one stopped every client for seconds)."""
    text = format(value, "f") if not value or abs(value.adjusted()) <= MAX_NUMBER_CHARS else ""
    # At most MAX_NUMBER_CHARS + its own digits long now, written in C.
    short = text.rstrip("0").rstrip(".") if "." in text else text  # 5.000…: the same number
    chars = len(short.lstrip("-")) if text else abs(value.adjusted()) + 1
    if chars > MAX_NUMBER_CHARS:
        raise t.BadParameter(
            f"numeric parameter is out of range: {chars} digits written out, at most "
            f"{MAX_NUMBER_CHARS}", "22003")
    return short if len(text) > MAX_NUMBER_CHARS else text


def _exact(text: str) -> str:
    """A number of more than 38 digits written out, which DuckDB would read as
    a DOUBLE (`0.` and 38 digits: UPDATE … SET d = $1 stored 0.123456789012345680…
    in a DECIMAL(38,38), and 0.99…9 was refused as 1.0): the DECIMAL of its
    digits if 38 hold them. Past 38 significant digits, which no DECIMAL holds:
    the DECIMAL(38, s) of its first 38 digits, so a column's cast of a smaller
    scale rounds it as PostgreSQL's numeric would (within one unit of the
    38th digit where the column's scale is that large);
    a number that keeps fewer digits than a DOUBLE so (below 1e-21) is written
    out, a DOUBLE; one of more than 38 whole digits is its text (no DECIMAL or
    arithmetic takes it; a column's cast reads it, a TEXT column keeps it).
    (Its text was also used for the others: `SELECT $1 * 2` gave 0; then the
    bare number, a DOUBLE: 17 digits stored in a DECIMAL(38,10).)"""
    whole, _, fraction = text.lstrip("-").partition(".")
    whole = whole.lstrip("0")
    if len(whole) + len(fraction) > 38:
        fraction = fraction.rstrip("0")  # 5.000…: the same number
    sign = "-" if text.startswith("-") else ""
    if len(whole) + len(fraction) <= 38:
        digits = f"{sign}{whole or '0'}{'.' + fraction if fraction else ''}"
        width = max(len(whole) + len(fraction), 1)
        return f"CAST({_string(digits)} AS DECIMAL({width}, {len(fraction)}))"
    if len(whole) > 38:
        return _string(text)
    scale = 38 - len(whole)
    kept = 38 if whole else scale - (len(fraction) - len(fraction.lstrip("0")))
    if kept < 17:  # a DOUBLE keeps more of it
        return f"({text})" if sign else text
    # Cut, not rounded: a column's cast then rounds half away from zero as it
    # would the whole number (1.00000000004999…9 to 1.0000000000 in a
    # DECIMAL(38,10); rounded at 38 digits first it was 1.0000000001).
    digits = sign + (whole or "0") + "." + fraction[:scale]
    return f"CAST({_string(digits)} AS DECIMAL(38, {scale}))"


def _string(text: str) -> str:
    return str(exp.Literal.string(text).sql(dialect="duckdb"))


Spots = tuple[tuple[int, int, int], ...]


def _replace(sql: str, text_of: Any, spots: Spots | None = None) -> str:
    """`spots`: `placeholders(sql)`, when the caller kept them (a long text's
    are not cached, and finding them takes seconds for 10 MB)."""
    spots = placeholders(sql) if spots is None else spots
    if not spots:
        return sql
    parts = []
    last = 0
    for start, end, n in spots:
        parts.append(sql[last:start])
        parts.append(text_of(n))
        last = end
    parts.append(sql[last:])
    return "".join(parts)


def substitute(sql: str, values: list[Any], oids: list[int], spots: Spots | None = None) -> str:
    """`sql` with every `$n` replaced by the literal of values[n - 1]; one cast
    to a bare NUMERIC as PostgreSQL reads it (numeric_casts.py)."""
    spots = placeholders(sql) if spots is None else spots
    parts, last = [], 0
    for start, end, n in spots:
        if n > len(values):
            raise PlaceholderError(f"there is no parameter ${n}")
        text = literal(values[n - 1], oids[n - 1] if n <= len(oids) else 0)
        cast = numeric_casts.rewrite(sql, end, values[n - 1])
        if cast is not None:
            text, end = cast
        parts += [sql[last:start], text]
        last = end
    parts.append(sql[last:])
    return "".join(parts)


def typed_nulls(sql: str, oids: list[int], spots: Spots | None = None) -> str:
    """`sql` with every `$n` replaced by a NULL of its type (for describing);
    after ESCAPE, which takes a plain literal, a bare NULL (`LIKE $1 ESCAPE
    $2` was 42601 "unexpected 'CAST'", naming text the client never wrote)."""
    spots = placeholders(sql) if spots is None else spots
    parts = []
    last = 0
    for start, end, n in spots:
        oid = oids[n - 1] if n <= len(oids) else 0
        typed = f"CAST(NULL AS {_DUCK_OF.get(oid) or arrays.duck_type(oid) or 'VARCHAR'})"
        parts += [sql[last:start],
                  "NULL" if _AFTER_ESCAPE.search(sql, max(0, start - 64), start) else typed]
        last = end
    parts.append(sql[last:])
    return "".join(parts)


_AFTER_ESCAPE = re.compile(r"\bESCAPE\s*\Z", re.IGNORECASE)


_DUCK_OF = {
    t.BOOL: "BOOLEAN", t.INT2: "SMALLINT", t.INT4: "INTEGER", t.INT8: "BIGINT",
    t.FLOAT4: "REAL", t.FLOAT8: "DOUBLE", t.NUMERIC: "DECIMAL(38,10)", t.BYTEA: "BLOB",
    t.DATE: "DATE", t.TIMESTAMPTZ: "TIMESTAMP", t.TIMESTAMP: "TIMESTAMP", t.JSON: "JSON",
}  # fmt: skip



ColumnTypes = dict[tuple[str | None, str], dict[str, str]]  # (ns, table) -> column -> Cairn type




def untyped(declared: list[int], n: int) -> tuple[list[int], list[Target | None]]:
    """The OIDs of Parse (0 for those it did not give), no column known yet."""
    return declared + [0] * max(0, n - len(declared)), [None] * n


def to_infer(oids: list[int]) -> bool:
    """Whether Parse looks into the statement: for a type left open, or the
    column a float4 is written into (check() names it)."""
    return any(o in (0, t.FLOAT4) for o in oids)


def infer(sql: str, declared: list[int], lookup: Any, default_ns: str | None = None,
          texts: dict[int, bool | str] | None = None,
          ) -> tuple[list[int], list[Target | None]]:
    """OIDs for every parameter: the declared one, else inferred, else text;
    and the column each is written into (INSERT … VALUES, UPDATE … SET), if any.
    MisplacedParameter for a `$n` where a name must stand. `texts` gets the
    (0-based) parameters of no declared type written into or compared with a
    DECIMAL column, and else only TEXT ones: their text is read as an HTTP
    literal's (statements._decoded); True: whatever it is (beside a TEXT
    column, or compared with a DECIMAL: the number's reading was the TEXT
    column's, met the other values' type, and was no DECIMAL's cast: rounded
    or refused as the literal is), False: one DuckDB reads
    by rules of its own only; a type: an array compared by ANY with DECIMAL
    columns of it, its elements' texts cast to it by DuckDB.

    `lookup(namespace, table)` gives {column: Cairn type} or None; an
    unqualified table is in `default_ns`. Columns are bound to their tables
    as SQL scopes bind them (param_columns)."""
    spots = placeholders(sql)
    n = max((k for _, _, k in spots), default=0)
    oids = [declared[i] if i < len(declared) and declared[i] else 0 for i in range(n)]
    targets: list[Target | None] = [None] * n
    read = _read(sql)
    if read is None:
        return [o or t.TEXT for o in oids], targets
    tree, mark, first = read
    wrong = first(param_columns.misplaced(tree, mark))
    if wrong is not None:
        raise MisplacedParameter(*wrong)
    binder = param_columns.Binder(tree, lookup, default_ns)
    compared: dict[int, str | None] = {}  # guess's type by the expression compared in
    declared_oid = list(oids)
    kinds: dict[int, set[str]] = {}  # what it is written into or compared with: place_kind
    for node in tree.find_all(exp.Column):
        idx = number(node, mark)
        if 1 <= idx <= n:
            targets[idx - 1] = targets[idx - 1] or target_of(node, binder)
            if not oids[idx - 1]:
                oids[idx - 1] = guess(node, binder, mark, compared) or 0
            if texts is not None and not declared_oid[idx - 1]:  # each place of it
                kinds.setdefault(idx - 1, set()).add(place_kind(node, binder, mark, compared))
    for fetch in tree.find_all(exp.Fetch):  # FETCH FIRST $n ROWS: sqlglot's name, a count
        count = fetch.args.get("count")
        name = count.name.lower() if isinstance(count, exp.Identifier) else ""
        idx = int(name[len(mark):]) if name.startswith(mark) and name[len(mark):].isdigit() else 0
        if 1 <= idx <= n:
            kinds.setdefault(idx - 1, set()).add("")
            oids[idx - 1] = oids[idx - 1] or t.INT8
    if texts is not None:
        texts.update((i, bool(kind & {"TEXT", "COMPARED"})) for i, kind in kinds.items()
                     if kind & {"DECIMAL", "COMPARED"} and kind <= {"DECIMAL", "TEXT", "COMPARED"})
        texts.update((i, kind.pop()[4:]) for i, kind in kinds.items()  # ANY: its list's type
                     if len(kind) == 1 and next(iter(kind)).startswith("ANY "))
    return [o or t.TEXT for o in oids], targets


class MisplacedParameter(PlaceholderError):
    """A `$n` where a name must stand: 42601, PostgreSQL's syntax error."""

    code = "42601"

    def __init__(self, n: int, position: int | None) -> None:
        super().__init__(f'syntax error at or near "${n}"')
        self.position = position  # 1-based, in the statement's text


def refuse_misplaced(sql: str) -> None:
    """MisplacedParameter for a `$n` where a name must stand, for a statement
    whose types Parse all declared (`infer` checks the others)."""
    found = _cached_misplaced(sql) if len(sql) <= MAX_CACHED_CHARS else _misplaced(sql)
    if found is not None:
        raise MisplacedParameter(*found)


@functools.lru_cache(maxsize=512)
def _cached_misplaced(sql: str) -> tuple[int, int | None] | None:
    return _misplaced(sql)


def _misplaced(sql: str) -> tuple[int, int | None] | None:
    if not placeholders(sql):
        return None
    read = _read(sql)
    if read is None:
        return None  # not SQL sqlglot reads: Cairn's own statements take no names as strings
    tree, mark, first = read
    return first(param_columns.misplaced(tree, mark))


Found = list[tuple[int, int | None]]


def _read(sql: str) -> tuple[Any, str, Callable[[Found], tuple[int, int | None] | None]] | None:
    """sqlglot's tree of `sql` with each `$n` written as a name (`_marked`)
    and each run of comments as one space, as the SQL parser reads it (sqlglot
    read every comment holding the GIL: a `$1` and 2,000,000 comments, 20 s);
    the names' mark; and `first(found)`: the first of `found` (`misplaced`'s
    answer) as (n, 1-based position in `sql`). None if sqlglot cannot read it."""
    src = Uncommented(sql, comment_runs(sql))
    spots = placeholders(src.text)
    marked, mark, where = _marked(src.text, spots)
    try:
        tree: Any = sqlglot.parse_one(marked, read="duckdb")
    except (SqlglotError, RecursionError):
        return None

    def first(found: Found) -> tuple[int, int | None] | None:
        hit = _first(found, where, spots)
        if hit is None or hit[1] is None:
            return hit
        return hit[0], src.offset(hit[1] - 1) + 1

    return tree, mark, first


def _first(found: list[tuple[int, int | None]], where: dict[int, int], spots: Spots,
           ) -> tuple[int, int | None] | None:
    """(n, 1-based position in the text) of the first of `found` ((n, offset
    in the marked text, if sqlglot kept it))."""
    if not found:
        return None
    first = {n: start + 1 for start, _, n in reversed(spots)}
    at = [(where.get(offset, first.get(n, 0)) if offset is not None else first.get(n, 0), n)
          for n, offset in found]
    position, n = min(at)
    return n, position or None


def _marked(sql: str, spots: Spots) -> tuple[str, str, dict[int, int]]:
    """`sql` with each `$n` written as a name, `mark`n, that the text holds
    nowhere else (so every such name is a parameter); and for each, its
    offset in that text -> the 1-based position of its `$n` in `sql`."""
    lowered = sql.lower()
    mark = _MARK
    while mark in lowered:
        mark = "x" + mark
    parts: list[str] = []
    where: dict[int, int] = {}
    last = shift = 0
    for start, end, n in spots:
        name = f"{mark}{n}"
        parts += [sql[last:start], name]
        where[start + shift] = start + 1
        shift += len(name) - (end - start)
        last = end
    parts.append(sql[last:])
    return "".join(parts), mark, where


def check(values: list[Any], oids: list[int], targets: list[Target | None]) -> None:
    """Refuse a value its column (or its type) cannot hold, as an HTTP literal
    is refused (storage.types.coerce, INVALID_ARGUMENT naming the column):
    a float4 that is 0.0 or infinity only once rounded to REAL (1e-46, 1e39),
    which DuckDB's CAST stores in silence, and a date or timestamp 'infinity'
    (asyncpg's date.max, in binary). A float4 written into no REAL column is
    22003 naming the parameter, as PostgreSQL's float4 input says it."""
    for i, value in enumerate(values):
        if value is None:  # nothing to refuse (65,535 NULLs took 23 ms here)
            continue
        target = targets[i] if i < len(targets) else None
        kind = target[1] if target else ""
        if isinstance(value, t.Float4):
            column = {"name": target[0] if target and kind == "REAL" else f"${i + 1}",
                      "type": "REAL"}
            try:
                coerce(column, value.text)
            except InvalidArgument:
                if kind == "REAL":
                    raise
                raise t.BadParameter(f"parameter ${i + 1}: {value.text[:40]!r} is out of range "
                                     "for type real", "22003") from None
        elif target and kind in ("DATE", "TIMESTAMP") and isinstance(value, str) and (
                i < len(oids) and oids[i] in (t.DATE, t.TIMESTAMP, t.TIMESTAMPTZ)
                and value.strip().lower() in _INFINITY):
            coerce({"name": target[0], "type": kind}, value)


_MARK = "cairn_parameter_"


