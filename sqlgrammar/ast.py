"""Typed statements: what the parser hands to the executor.

The executor never sees a Lark tree or raw text of Cairn's own statements; it
dispatches on these classes. Ordinary SQL (SELECT/INSERT/UPDATE/DELETE) arrives
as `Query`, holding the sqlglot expression.

Names are already folded to lower case. Option keys are lower case; option values
are Python literals (str, int, float, bool, None); a DEFAULT's number with a
point or exponent is a Decimal, exact as written.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from typing import Literal as TLiteral

OptionValue = str | int | float | bool | None
DefaultValue = OptionValue | decimal.Decimal


class ExponentNumber(decimal.Decimal):
    """A number DuckDB reads as a DOUBLE: written with an exponent (`1e3`,
    `5e0`) or with more than 38 digits (a DEFAULT's, a fast-path INSERT's),
    exact, with its text in `sql`, which the Decimal alone does not say
    (`CAST(5e0 AS JSON)` is 5.0, of `5` it is 5). storage reads `sql` as it
    reads an INSERT literal's (storage/spelling.number_sql, storage/doubles.py)."""

    sql: str

    @classmethod
    def of(cls, text: str) -> ExponentNumber:
        out = cls(text)
        out.sql = text
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # Decimal's pickles the value alone
        return ExponentNumber.of, (self.sql,)
TableKind = TLiteral["shared", "user", "stream"]


@dataclass(frozen=True)
class TableRef:
    """`ns.table` or just `table` (resolved later against the request's namespace)."""

    namespace: str | None
    name: str


@dataclass(frozen=True)
class TypeSpec:
    """A column type. `name` is canonical: BOOLEAN, SMALLINT, INT, BIGINT, REAL,
    DOUBLE, DECIMAL, TEXT, BYTES, DATE, TIMESTAMP, JSON (INTEGER -> INT,
    FLOAT -> REAL, VARCHAR -> TEXT, BLOB -> BYTES). `params` holds DECIMAL(p, s)
    or TEXT(n) arguments."""

    name: str
    params: tuple[int, ...] = ()


@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: TypeSpec
    not_null: bool = False
    primary_key: bool = False
    has_default: bool = False
    default: DefaultValue = None


@dataclass(frozen=True)
class Statement:
    """Base of every statement."""


# --- namespaces -------------------------------------------------------------


@dataclass(frozen=True)
class CreateNamespace(Statement):
    name: str
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropNamespace(Statement):
    name: str
    if_exists: bool = False
    cascade: bool = False


@dataclass(frozen=True)
class ShowNamespaces(Statement):
    pass


# --- tables -----------------------------------------------------------------


@dataclass(frozen=True)
class CreateTable(Statement):
    table: TableRef
    columns: tuple[ColumnDef, ...]
    kind: TableKind = "shared"
    if_not_exists: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class DropTable(Statement):
    table: TableRef
    if_exists: bool = False


@dataclass(frozen=True)
class AlterTableAddColumn(Statement):
    table: TableRef
    column: ColumnDef
    if_exists: bool = False  # the table's (ALTER TABLE IF EXISTS)
    if_not_exists: bool = False  # the column's


@dataclass(frozen=True)
class AlterTableDropColumn(Statement):
    table: TableRef
    column: str
    if_exists: bool = False  # the table's (ALTER TABLE IF EXISTS)
    column_if_exists: bool = False


@dataclass(frozen=True)
class ShowTables(Statement):
    namespace: str | None = None


@dataclass(frozen=True)
class DescribeTable(Statement):
    table: TableRef
    history: bool = False


@dataclass(frozen=True)
class FlushTable(Statement):
    table: TableRef


@dataclass(frozen=True)
class FlushAllTables(Statement):
    namespace: str


# --- backups ----------------------------------------------------------------


@dataclass(frozen=True)
class BackupDatabase(Statement):
    namespace: str
    target: str
    if_exists: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class RestoreDatabase(Statement):
    namespace: str
    target: str
    as_name: str | None = None
    if_not_exists: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class BackupDatabases(Statement):
    """BACKUP DATABASE a, b … (namespaces) or BACKUP ALL (all): one instant across them."""

    namespaces: tuple[str, ...]
    target: str
    all: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class RestoreAll(Statement):
    target: str
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class BackupTables(Statement):
    """BACKUP TABLE ns.t [, ns.u …]: the named tables of one namespace at one instant."""

    tables: tuple[TableRef, ...]
    target: str
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class RestoreTable(Statement):
    table: TableRef
    target: str
    as_table: TableRef | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class ShowBackups(Statement):
    namespace: str | None = None
    target: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class ShowBackup(Statement):
    backup_id: str
    target: str | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class VerifyBackup(Statement):
    backup_id: str
    target: str | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class DropBackup(Statement):
    backup_id: str
    target: str | None = None
    if_exists: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class AttachBackups(Statement):
    """Record every (valid) backup of a target in the server's catalog."""

    target: str


# --- jobs -------------------------------------------------------------------


@dataclass(frozen=True)
class ShowJobs(Statement):
    pass


@dataclass(frozen=True)
class ShowJob(Statement):
    job_id: str


@dataclass(frozen=True)
class KillJob(Statement):
    """KILL JOB 'id', or its synonym CANCEL JOB 'id'."""

    job_id: str


@dataclass(frozen=True)
class PauseJob(Statement):
    job_id: str


@dataclass(frozen=True)
class ResumeJob(Statement):
    job_id: str


# --- schedules --------------------------------------------------------------


@dataclass(frozen=True)
class CreateSchedule(Statement):
    """Exactly one of `every` (an interval like '1h') and `cron` (a cron expression) is set."""

    name: str
    namespace: str
    target: str
    every: str | None
    keep_last: int | None = None
    if_not_exists: bool = False
    options: tuple[tuple[str, OptionValue], ...] = ()
    cron: str | None = None


@dataclass(frozen=True)
class ShowSchedules(Statement):
    pass


@dataclass(frozen=True)
class DropSchedule(Statement):
    name: str
    if_exists: bool = False


# --- continuous archiving --------------------------------------------------


@dataclass(frozen=True)
class StartArchiving(Statement):
    namespace: str
    target: str
    options: tuple[tuple[str, OptionValue], ...] = ()


@dataclass(frozen=True)
class StopArchiving(Statement):
    namespace: str


@dataclass(frozen=True)
class ShowArchives(Statement):
    pass


@dataclass(frozen=True)
class ShowRestorePoints(Statement):
    namespace: str
    target: str


@dataclass(frozen=True)
class VerifyArchive(Statement):
    namespace: str
    target: str
    options: tuple[tuple[str, OptionValue], ...] = ()


# --- ordinary SQL -----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Query(Statement):
    """SELECT / INSERT / UPDATE / DELETE, parsed by sqlglot (DuckDB dialect).

    `kind` is 'select', 'insert', 'update', 'delete', 'summarize' (SUMMARIZE
    ns.t or a query), 'describe' (DESCRIBE SELECT ...), 'pivot' (a PIVOT or
    UNPIVOT statement) or 'other' (refused). `expression` is
    the sqlglot tree. `sql`, the normalised text sqlglot prints back, is made only
    when asked for (printing a 1000-row INSERT costs as much as parsing it); two
    queries are equal when they print the same."""

    kind: str
    expression: Any = field(default=None, repr=False)
    # One row to insert or one key to look up (the fast path's shapes,
    # fastpath.py): cheap enough for the server to try on its event loop.
    small: bool = field(default=False, repr=False)
    # A fast-path single-row INSERT's typed description (fastpath.FastInsert),
    # which the server's one-row INSERT reads instead of the tree (then given
    # as a `Later`, built only if something reads it); else None.
    fast: Any = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def sql(self) -> str:
        return str(self.expression.sql(dialect="duckdb"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and (self.kind, self.sql) == (other.kind, other.sql)

    def __hash__(self) -> int:
        return hash((self.kind, self.sql))


class Later:
    """A tree not built yet: `Query(kind, Later(build), ...)` builds it on the
    first read of `expression` (a fast-path single-row INSERT, which the
    server runs from its typed description, `Query.fast`, never does)."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build


class _Tree:
    """`Query.expression`: the tree, built on first read if it came as a
    `Later`. The field, its default and `Query`'s type stay what they were;
    anything that reads `expression` (EXPLAIN, printing, the tests) gets the
    tree the normal path would have given."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return None
        tree = obj.__dict__["_tree"]
        if type(tree) is Later:
            tree = obj.__dict__["_tree"] = tree.build()
        return tree

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_tree"] = value  # the dataclass's __init__ only (it is frozen)


Query.expression = _Tree()  # after @dataclass read the field's default


@dataclass(frozen=True)
class Explain(Statement):
    """`EXPLAIN [ANALYZE] <query>`: the plan of `query` as Cairn runs it."""

    query: Query
    analyze: bool = False


@dataclass(frozen=True)
class ParsedStatement:
    """One statement of a request, with where it starts in the request text."""

    statement: Statement
    text: str
    index: int  # 1-based position in the request
    line: int  # 1-based
    column: int  # 1-based


def options_dict(options: tuple[tuple[str, OptionValue], ...]) -> dict[str, OptionValue]:
    return dict(options)
