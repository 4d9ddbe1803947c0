"""`DEFAULT` written as a value: `INSERT … VALUES (1, DEFAULT)` and `UPDATE …
SET v = DEFAULT` give the column its DEFAULT (NULL without one), as in
PostgreSQL and DuckDB. Each went on to DuckDB as an expression and came back
as its binder's words ("SELECT clause cannot contain DEFAULT clause",
'Referenced column "DEFAULT" not found')."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlglot import exp

from catalog.errors import InvalidArgument, ParseError

from . import stopping
from . import values as _values
from .spelling import cast_reads, decimal_casts
from .stopping import CHECK_CELLS
from .types import DEFAULT_DECIMAL, Column, coerce, default_value

DEFAULT: Any = type("Default", (), {"__repr__": lambda self: "DEFAULT"})()  # a cell's marker


def is_default(node: Any) -> bool:
    """Is `node` the word DEFAULT where a value stands? sqlglot reads it as a
    Var in VALUES and as an unquoted column elsewhere (`"default"` is a name)."""
    if isinstance(node, exp.Var):
        return node.name.upper() == "DEFAULT"
    return isinstance(node, exp.Column) and not node.table and isinstance(
        node.this, exp.Identifier) and not node.this.quoted and node.name.upper() == "DEFAULT"


def default_row(e: exp.Insert, names: list[str] | None) -> tuple[list[str], list[list[Any]]]:
    """`INSERT INTO t DEFAULT VALUES`: (no names, one row of defaults). With a
    column list or BY NAME it is refused with DuckDB's words, as DuckDB
    refuses it; both were taken, as a row of defaults."""
    if names is not None:
        raise ParseError("You can not provide both a column list and DEFAULT VALUES, "
                         "please remove one of the two")
    if e.args.get("by_name"):
        raise InvalidArgument("INSERT BY NAME cannot be combined with DEFAULT VALUES")
    return [], [[]]


def default_cells(values: exp.Values) -> tuple[exp.Values, list[tuple[int, int]]]:
    """`values` with each DEFAULT cell a NULL (a copy, when it has one), and
    the (row, column) places of those cells."""
    places = [(i, j) for i, row in enumerate(values.expressions)
              for j, cell in enumerate(row.expressions if isinstance(row, exp.Tuple) else [row])
              if is_default(cell)]
    if not places:
        return values, []
    copy = values.copy()
    for i, j in places:
        row = copy.expressions[i]
        (row.expressions[j] if isinstance(row, exp.Tuple) else row).replace(exp.null())
    return copy, places


def values_rows(engine: Any, values: exp.Values, user: str | None, ns: str | None,
                targets: list[dict[str, Any]] | None = None) -> list[list[Any]]:
    """`storage.values.values_rows`, a DEFAULT cell given as `DEFAULT` (for
    `write_values` to put the column's default in)."""
    source, places = default_cells(values)
    rows = _values.values_rows(engine, source, user, ns, targets)
    for i, j in places:
        rows[i][j] = DEFAULT
    return rows


def cell(col: Column, value: Any, row: int) -> Any:
    """A value as written into `col` (`coerce`); DEFAULT the column's
    default, or a NULL as written (refused in a NOT NULL column) without one."""
    if value is DEFAULT:
        if col.get("has_default"):
            return default_value(col)
        value = None
    return coerce(col, value, row)


def cells(targets: list[Column], rows: list[list[Any]], data: dict[str, list[Any]]) -> None:
    """Each row's values as written into `targets` (`cell`), appended to
    their columns in `data`; a `stopping.check` every CHECK_CELLS values (the
    statement's timeout and cancel: past them nothing is written)."""
    with decimal_texts(targets, rows):
        for span in stopping.spans(len(rows), max(1, CHECK_CELLS // max(1, len(targets)))):
            for i, row in enumerate(rows[span], span.start + 1):
                for col, value in zip(targets, row, strict=False):
                    data[col["name"]].append(cell(col, value, i))


def column_cells(col: Column, values: list[Any]) -> list[Any]:
    """An UPDATE's new values as written into `col` (`coerce`), a
    `stopping.check` every CHECK_CELLS values."""
    out: list[Any] = []
    with decimal_texts([col], values, columns=True):
        for span in stopping.spans(len(values)):
            out += [coerce(col, v, r) for r, v in enumerate(values[span], span.start + 1)]
    return out


@contextmanager
def decimal_texts(targets: list[Column], rows: list[Any], columns: bool = False) -> Iterator[None]:
    """While the block writes `rows` into `targets`, their texts DuckDB
    reads by rules of its own ('1e0', '1_000' into a DECIMAL) cast at once,
    a query a column (spelling.decimal_casts). `columns`: `rows` is the one
    target's values. Picked a CHECK_CELLS rows at a time, `stopping.check`
    before each (a million rows took ~0.2 s before the cast's first check)."""
    groups = []
    for j, col in enumerate(targets):
        if col["type"] == "DECIMAL":
            texts: list[str] = []
            for span in stopping.spans(len(rows)):
                texts += ([v for v in rows[span] if isinstance(v, str) and cast_reads(v)]
                          if columns else [r[j] for r in rows[span] if j < len(r) and isinstance(
                              r[j], str) and cast_reads(r[j])])
            if texts:
                p, s = col.get("params") or DEFAULT_DECIMAL
                groups.append((p, s, texts))
    with decimal_casts(groups):
        yield
