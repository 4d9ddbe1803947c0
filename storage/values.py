"""INSERT ... VALUES rows as Python values: literals read straight from the
sqlglot tree (fast for 1000-row statements), anything else (now(), 1 + 2,
casts) evaluated by DuckDB in one query per statement, inside the sandbox."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import pyarrow as pa
from sqlglot import exp

from catalog.errors import InvalidArgument, ParseError

from . import sandbox, stopping
from .doubles import MAX_DECIMAL_WIDTH
from .duck import UUID_KEY
from .json_columns import CAIRN_TYPE
from .literal_range import HUGEINT_MAX, literal_problem
from .names import fold
from .ports import Selector
from .spelling import NumberText, json_column, json_strings, number_sql, times_of
from .stopping import CHECK_CELLS


class _NotLiteral(Exception):
    pass


_PLAIN = re.compile(r"[0-9]+\.[0-9]+")


def literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        if len(text) >= 39 and (wrong := literal_problem(node)) is not None:
            raise InvalidArgument(wrong)  # as a query refuses it (literal_range)
        if re.fullmatch(r"\d+", text):
            return int(text)
        # `1e5` is a DOUBLE to DuckDB, `5.` a DECIMAL(1,0), `ddd.ddd` a DECIMAL
        # up to 38 digits and a DOUBLE past them: the text says what a Decimal
        # does not (storage/doubles.py; the fast path's Decimal too).
        if _PLAIN.fullmatch(text) and len(text) <= MAX_DECIMAL_WIDTH + 1:
            return decimal.Decimal(text)
        try:
            return NumberText.of(text, text)
        except decimal.InvalidOperation:  # `1e`, `2E`: sqlglot's number, no Decimal's
            raise _not_a_number(text) from None
    if isinstance(node, exp.Neg):
        value = literal(node.this)
        if isinstance(value, decimal.Decimal):
            # Exact: `-value` rounds to the context's 28 digits, and an
            # acknowledged DECIMAL(38,10) lost its last digits.
            if isinstance(value, NumberText):
                return NumberText.of(value.copy_negate(), f"-({number_sql(value)})")
            if not value and _decimal_width(node.this, value) <= MAX_DECIMAL_WIDTH:
                # DuckDB reads `-0.0` as a DECIMAL 0.0 negated, and a DECIMAL has
                # no -0: 0.0 into a DOUBLE, as its UPDATE and INSERT ... SELECT
                # store it (this stored -0.0). sqlgrammar/fastpath._number agrees.
                return value.copy_abs()
            return value.copy_negate()
        if isinstance(value, int) and not isinstance(value, bool):
            if -value > HUGEINT_MAX:  # `- -170141183460469231731687303715884105728`
                raise _NotLiteral  # DuckDB's to read (and refuse)
            return -value
    if isinstance(node, exp.Paren):
        return literal(node.this)
    if (isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string
            and not node.to.expressions):  # TIMESTAMP(3) is DuckDB's to cut
        return _cast(node.to.this, node.this.this)
    raise _NotLiteral


def _decimal_width(node: exp.Expression, value: decimal.Decimal) -> int:
    """How many digits DuckDB counts in a plain number literal (leading zeros
    too: `-000…0.0` of 40 digits is a DOUBLE -0.0 to it)."""
    while isinstance(node, exp.Paren):
        node = node.this
    text = node.this if isinstance(node, exp.Literal) else format(value, "f")
    return sum(ch.isdigit() for ch in text)


class NotANumber(InvalidArgument):
    """A literal sqlglot reads as a number and no number is (`1e`: DuckDB
    reads `1 AS e`; it was a 500 with a traceback). PostgreSQL calls it a
    syntax error (42601, "trailing junk after numeric literal")."""

    sqlstate = "42601"


def _not_a_number(text: str) -> NotANumber:
    hint = " (an exponent needs digits: 1e5)" if text[-1:] in "eE" else ""
    return NotANumber(f"numeric literal '{text}' is not a number{hint}")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_TIMESTAMPS = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ)  # sqlglot's TIMESTAMP


def _cast(to: Any, text: str) -> Any:
    """`CAST('text' AS DATE|TIMESTAMP)` as DuckDB gives it, for the plain ISO
    forms DuckDB and Python read alike (a pgwire parameter's datetime is one,
    in each row of a long INSERT). Any other cast is DuckDB's to make: the
    string it casts was stored as if untyped, and a TIMESTAMP column took
    CAST('2024-06-01 12:34:56' AS DATE) as 12:34:56, a TEXT column
    CAST('not a date' AS DATE) the text."""
    try:
        if to == exp.DataType.Type.DATE and _DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
        if to in _TIMESTAMPS and _TIMESTAMP.fullmatch(text):
            return dt.datetime.fromisoformat(text)
    except ValueError:  # 2024-02-30: DuckDB's error
        pass
    raise _NotLiteral


def values_rows(engine: Selector, values: exp.Values, user: str | None, ns: str | None,
                targets: list[dict[str, Any]] | None = None) -> list[list[Any]]:
    """VALUES rows as Python values: literals directly, other expressions
    (now(), 1 + 2, casts) evaluated by DuckDB in one query, each as written
    into its column of `targets` (`as_written`)."""
    rows: list[list[Any]] = []
    complex_cells: list[tuple[int, int, exp.Expression]] = []
    for i, tup in enumerate(values.expressions):
        cells = tup.expressions if isinstance(tup, exp.Tuple) else [tup]
        row = []
        for j, cell in enumerate(cells):
            try:
                row.append(literal(cell))
            except _NotLiteral:
                sandbox.check_fragment(cell)
                complex_cells.append((i, j, cell))
                row.append(None)
        rows.append(row)
    if complex_cells:
        sel = exp.select(*[exp.alias_(c.copy(), f"c{k}") for k, (_, _, c) in enumerate(complex_cells)])
        result = engine.select(sel, user, ns)
        for k, (i, j, _) in enumerate(complex_cells):
            what = f"value {j + 1} of row {i + 1}"
            col = targets[j] if targets is not None and j < len(targets) else None
            rows[i][j] = py_values(as_written(col, result.column(k), what,
                                              result.schema.field(k)), what)[0]
    return rows


def py_values(column: Any, what: str) -> list[Any]:
    """An Arrow column's values in Python; InvalidArgument naming `what` for a
    date or time Python cannot hold (DuckDB's `'infinity'::TIMESTAMP`, year
    20000), which no column stores (docs/sql.md)."""
    try:
        return column.to_pylist()  # type: ignore[no-any-return]
    except (OverflowError, ValueError):
        raise InvalidArgument(
            f"{what}: a date or time outside the years 1-9999 (or infinity) cannot be "
            "stored") from None


def as_written(col: dict[str, Any] | None, column: pa.ChunkedArray | pa.Array,
               what: str, field: pa.Field | None = None) -> pa.ChunkedArray | pa.Array:
    """A query's column as it is written into `col`, as DuckDB's cast to the
    column's type gives it: into JSON any value but text is DuckDB's JSON of it
    (a DECIMAL a number, not the string "1.5"; a BLOB in a struct its text,
    not base64); into TEXT a value but text, a number or a BLOB is DuckDB's
    text of it (a REAL 0.1 '0.1', not '0.10000000149011612'). A struct, list
    or map for no column is JSON; a UUID, BIT or ENUM (text to Arrow, not to
    DuckDB: `field` says) a JSON string. INVALID_ARGUMENT naming `what` if
    DuckDB refuses."""
    t = column.type
    if col is not None and col["type"] not in ("TEXT", "JSON") and pa.types.is_timestamp(t) \
            and t.unit == "ns":  # a TIMESTAMP_NS: as CAST takes it, not refused by Python
        try:
            return times_of(column, col["type"])
        except ValueError as exc:
            raise InvalidArgument(f"{what}: {exc}") from None
    if col is not None and col["type"] == "JSON" and (pa.types.is_dictionary(t) or (
            field is not None and _not_text(field))):
        try:
            return json_strings(column)
        except ValueError as exc:
            raise InvalidArgument(f"{what}: {exc}") from None
    if col is not None and col["type"] == "TEXT":
        to = "VARCHAR" if not (_as_is(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
                               or pa.types.is_binary(t) or pa.types.is_large_binary(t)) else None
    elif col is not None and col["type"] == "JSON" or col is None and pa.types.is_nested(t):
        to = "JSON" if not _as_is(t) else None
    else:
        to = None
    if to is None:
        return column
    try:
        return json_column(column, to)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: {exc}") from None


def _not_text(field: pa.Field) -> bool:
    """An answer's column DuckDB hands to Arrow as text that is not text to
    it: a BIT (storage/bits.py marks it), a UUID (storage/duck.py)."""
    meta = field.metadata or {}
    return meta.get(CAIRN_TYPE) == b"BIT" or UUID_KEY in meta


def _as_is(t: pa.DataType) -> bool:
    """Text (JSON text into a JSON column), or no value at all."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))


def query_values(targets: list[dict[str, Any]], result: pa.Table) -> list[list[Any]]:
    """An INSERT ... SELECT's columns as Python values, each as written into
    its column of `targets` (the names in errors); `stopping.check` a column."""
    named = [c["name"] for c in targets] + result.column_names
    out = []
    for i in range(result.num_columns):
        stopping.check()
        out.append(py_values(as_written(targets[i] if i < len(targets) else None,
                                        result.column(i), f"Column '{named[i]}'",
                                        result.schema.field(i)), f"Column '{named[i]}'"))
    return out


def query_rows(targets: list[dict[str, Any]], result: pa.Table) -> list[list[Any]]:
    """`query_values` as rows, a `stopping.check` every CHECK_CELLS values:
    800,000 rows took seconds past the statement's timeout, then committed."""
    cols = query_values(targets, result)
    if not cols:
        return []
    rows: list[list[Any]] = []
    for span in stopping.spans(len(cols[0]), max(1, CHECK_CELLS // len(cols))):
        rows += [list(r) for r in zip(*[c[span] for c in cols], strict=False)]
    return rows


def unsupported_arg(e: exp.Expression, args: tuple[str, ...]) -> str | None:
    """The first of `args` the statement has, as SQL names it (sqlglot 30
    names some `from_`, `with_`: both spellings are looked at). PARSE_ERROR
    for a target table's alias with a column list, as DuckDB (`UPDATE ns.t AS
    x(a, b)`: the rows' columns were read by names the alias had changed)."""
    _refuse_alias_columns(e)
    for arg in args:
        if e.args.get(arg) or e.args.get(arg + "_"):
            return arg.upper()
    return None


def extra_arg(e: exp.Expression, allowed: frozenset[str]) -> str | None:
    """The first part the statement has outside `allowed` (an allow-list, so
    a clause a newer sqlglot parses is refused, not silently dropped), as SQL
    names it (`from_` is FROM). PARSE_ERROR for an alias with a column list
    (unsupported_arg)."""
    _refuse_alias_columns(e)
    for arg, value in e.args.items():
        if arg not in allowed and value:
            return arg.rstrip("_").upper()
    return None


def _refuse_alias_columns(e: exp.Expression) -> None:
    alias = e.this.args.get("alias") if isinstance(e.this, exp.Table) else None
    if isinstance(alias, exp.TableAlias) and alias.args.get("columns"):
        raise ParseError(f'syntax error at or near "(": the table of {e.key.upper()} takes an '
                         f"alias ({alias.name}), not a column list")


def with_of(e: exp.Insert, source: exp.Query) -> exp.Query:
    """A copy of an INSERT's query with the statement's WITH (`WITH c AS (...)
    INSERT INTO t SELECT ... FROM c`) moved onto it."""
    source = source.copy()
    ctes = e.args.get("with_") or e.args.get("with")
    if ctes is not None:
        if source.args.get("with_") or source.args.get("with"):
            raise InvalidArgument("INSERT ... with a WITH before it and one in its query "
                                  "is not supported: write one WITH")
        source.set("with_" if "with_" in type(source).arg_types else "with", ctes.copy())
    return source


def by_name(names: list[str] | None, columns: list[str]) -> list[str]:
    """The target columns of INSERT ... BY NAME: the query's column names."""
    if names is not None:
        raise InvalidArgument("INSERT ... BY NAME takes no column list")
    return [fold(c) for c in columns]
