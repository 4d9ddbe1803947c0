"""Lark parse results -> the statement dataclasses of `ast.py`.

Every rule of commands.lark has a method here; `__default__` raises, so a rule
added to the grammar without one fails loudly instead of leaking a Lark tree to
the executor (parser.py also checks the coverage when it loads the grammar).
Checks that need no catalog (names, types, duplicate columns or options, counts)
happen here and raise `SqlInvalid` with the offending token's position,
relative to the statement; parser.py shifts it into the request.
"""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import replace
from typing import Any, NamedTuple

from lark import Token, Transformer, Tree, v_args

from . import ast
from .errors import SqlInvalid

Options = tuple[tuple[str, ast.OptionValue], ...]

MAX_NAME_LENGTH = 64
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Every accepted type name -> its canonical name (see ast.TypeSpec).
TYPE_ALIASES: dict[str, str] = {
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "SMALLINT": "SMALLINT",
    "INT": "INT",
    "INTEGER": "INT",
    "BIGINT": "BIGINT",
    "REAL": "REAL",
    "FLOAT": "REAL",
    "DOUBLE": "DOUBLE",
    "DECIMAL": "DECIMAL",
    "NUMERIC": "DECIMAL",
    "TEXT": "TEXT",
    "VARCHAR": "TEXT",
    "BYTES": "BYTES",
    "BLOB": "BYTES",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "JSON": "JSON",
}
MAX_DECIMAL_PRECISION = 38
_TYPE_LIST = ", ".join(dict.fromkeys(TYPE_ALIASES.values()))


def _invalid(message: str, at: Token) -> SqlInvalid:
    return SqlInvalid(message, at.line or 1, at.column or 1)


def _unquote(text: str, quote: str) -> str:
    return text[1:-1].replace(quote * 2, quote)


def _number(tok: Token) -> int | decimal.Decimal:
    """A NUMBER token as int (no point, no exponent) or an exact Decimal, as an
    INSERT's literal is read (storage/values.py): a float lost digits, and
    DECIMAL(38,10) DEFAULT 12345678901234567890.1234567891 filled rows with
    12345678901234567000. Huge ones are refused here rather than surfacing later
    as ValueError or `inf`: no column's number holds them."""
    if any(c in tok for c in ".eE"):
        # A DOUBLE to DuckDB: an exponent, or 39+ digits as a query writes them (`.5` as 0.5).
        text = str(tok).replace(".", "0.", 1) if tok.lstrip("+-").startswith(".") else str(tok)
        double = "e" in tok.lower() or sum(c.isdigit() for c in text) > 38
        value = ast.ExponentNumber.of(text) if double else decimal.Decimal(tok)
        if not math.isfinite(float(value)):
            raise _invalid(f"number {tok} is out of range", tok)
        if not value and not double:
            return value.copy_abs()  # `-0.0`, a DECIMAL to DuckDB, has no sign (values.literal)
        return value
    try:
        return int(tok)
    except ValueError:  # more digits than int() accepts
        raise _invalid(f"number {tok[:20]}... is too long", tok) from None


def _option_number(key: Token, value: ast.DefaultValue) -> ast.OptionValue:
    """An option's number as int or float (options are counts and seconds): a
    whole one written without an exponent as an int, exactly (through a float,
    flush_rows = 9007199254740993.0 was 9007199254740992); one with an exponent
    is a double, as to DuckDB (and as a float option prints: 5.3e+16); a
    fraction a double cannot hold is refused (9007199254740993.5 became the
    whole 9007199254740994)."""
    if not isinstance(value, decimal.Decimal):
        return value
    whole = value == value.to_integral_value()
    if whole and not isinstance(value, ast.ExponentNumber):
        return int(value)
    number = float(value)
    if number.is_integer() and not whole:
        raise _invalid(f"option '{key}': {value} has more digits than a double holds; "
                       "write a whole number, or fewer digits", key)
    return number


class _ColumnAt(NamedTuple):
    """A column definition and the token of its name, for error positions."""

    column: ast.ColumnDef
    at: Token


class _PrimaryKeyAt(NamedTuple):
    """A table-level `PRIMARY KEY (col, ...)`: the name tokens."""

    names: tuple[Token, ...]


class _Constraint(NamedTuple):
    kind: str  # not_null | primary_key | default
    value: ast.DefaultValue = None


def _int_param(tok: Token, what: str, minimum: int) -> int:
    """A count in the grammar is a NUMBER token; only whole numbers >= minimum fit."""
    value = _number(tok)
    if not isinstance(value, int) or value < minimum:
        raise _invalid(f"{what} must be a whole number >= {minimum}, not {tok}", tok)
    return value


@v_args(inline=True)
class ToAst(Transformer[Token, ast.Statement]):
    """Builds `ast` dataclasses. Names are Tokens (str) until a dataclass is made."""

    def __default__(self, data: Any, children: Any, meta: Any) -> Any:
        if str(data).startswith("_"):  # Lark's helpers for `x*`, flattened into the parent
            return Tree(data, children, meta)
        raise NotImplementedError(f"commands.lark rule {data!r} has no ToAst method")

    # ---- namespaces ------------------------------------------------------------

    def create_namespace(self, if_not_exists: bool | None, name: Token) -> ast.CreateNamespace:
        return ast.CreateNamespace(str(name), bool(if_not_exists))

    def drop_namespace(
        self, if_exists: bool | None, name: Token, cascade: bool | None
    ) -> ast.DropNamespace:
        return ast.DropNamespace(str(name), bool(if_exists), bool(cascade))

    def show_namespaces(self) -> ast.ShowNamespaces:
        return ast.ShowNamespaces()

    # ---- tables ----------------------------------------------------------------

    def create_table(self, kind: ast.TableKind | None, if_not_exists: bool | None,
                     table: ast.TableRef, *rest: Any) -> ast.CreateTable:
        *elements, options = rest
        columns = [e for e in elements if isinstance(e, _ColumnAt)]
        seen: dict[str, Token] = {}
        for col in columns:
            if col.column.name in seen:
                raise _invalid(f"column '{col.column.name}' is defined twice", col.at)
            seen[col.column.name] = col.at
        keys = [e for e in elements if isinstance(e, _PrimaryKeyAt)]
        key_names: list[Token] = [c.at for c in columns if c.column.primary_key]
        for constraint in keys:
            for tok in constraint.names:
                if str(tok) not in seen:
                    raise _invalid(f"PRIMARY KEY names unknown column '{tok}'", tok)
            key_names.extend(constraint.names)
        if len(key_names) > 1:
            raise _invalid("a table can have only one PRIMARY KEY column", key_names[1])
        key = str(key_names[0]) if key_names else None
        defs = tuple(
            c.column if c.column.name != key or c.column.primary_key
            else replace(c.column, primary_key=True)
            for c in columns
        )
        return ast.CreateTable(table, defs, kind or "shared", bool(if_not_exists), options or ())

    def kind_shared(self) -> ast.TableKind:
        return "shared"

    def kind_user(self) -> ast.TableKind:
        return "user"

    def kind_stream(self) -> ast.TableKind:
        return "stream"

    def drop_table(self, if_exists: bool | None, table: ast.TableRef) -> ast.DropTable:
        return ast.DropTable(table, bool(if_exists))

    def alter_table_add_column(
        self, if_exists: bool | None, table: ast.TableRef, if_not_exists: bool | None,
        col: _ColumnAt,
    ) -> ast.AlterTableAddColumn:
        if col.column.primary_key:
            raise _invalid("ALTER TABLE ... ADD COLUMN cannot add a PRIMARY KEY", col.at)
        return ast.AlterTableAddColumn(table, col.column, bool(if_exists), bool(if_not_exists))

    def alter_table_drop_column(self, if_exists: bool | None, table: ast.TableRef,
                                column_if_exists: bool | None,
                                name: Token) -> ast.AlterTableDropColumn:
        return ast.AlterTableDropColumn(table, str(name), bool(if_exists), bool(column_if_exists))

    def show_tables(self, namespace: Token | None) -> ast.ShowTables:
        return ast.ShowTables(None if namespace is None else str(namespace))

    def describe_table(self, table: ast.TableRef, history: bool | None) -> ast.DescribeTable:
        return ast.DescribeTable(table, bool(history))

    def flush_table(self, table: ast.TableRef) -> ast.FlushTable:
        return ast.FlushTable(table)

    def flush_all_tables(self, namespace: Token) -> ast.FlushAllTables:
        return ast.FlushAllTables(str(namespace))

    def column_def(self, name: Token, type_: ast.TypeSpec, *constraints: _Constraint) -> _ColumnAt:
        given: dict[str, _Constraint] = {}
        for c in constraints:
            if c.kind in given:
                label = c.kind.replace("_", " ").upper()
                raise _invalid(f"column '{name}' has {label} twice", name)
            given[c.kind] = c
        default = given.get("default")
        column = ast.ColumnDef(
            name=str(name),
            type=type_,
            not_null="not_null" in given,
            primary_key="primary_key" in given,
            has_default=default is not None,
            default=None if default is None else default.value,
        )
        return _ColumnAt(column, name)

    def not_null(self) -> _Constraint:
        return _Constraint("not_null")

    def primary_key(self) -> _Constraint:
        return _Constraint("primary_key")

    def default(self, value: ast.DefaultValue) -> _Constraint:
        return _Constraint("default", value)

    def table_primary_key(self, *names: Token) -> _PrimaryKeyAt:
        return _PrimaryKeyAt(names)

    def type_spec(self, name: Token, precision: bool | None,
                  params: list[Token] | None) -> ast.TypeSpec:
        written = name.upper()
        canonical = TYPE_ALIASES.get(written)
        if canonical is None:
            raise _invalid(f"unknown type '{name}'; the types are {_TYPE_LIST}", name)
        if precision and canonical != "DOUBLE":
            raise _invalid(f"PRECISION only follows DOUBLE, not {name}", name)
        values = tuple(_int_param(t, f"{written} argument", 0) for t in params or ())
        if canonical == "DECIMAL" and values:
            if len(values) > 2:
                raise _invalid(f"{written} takes (precision[, scale])", name)
            p, s = values[0], values[1] if len(values) == 2 else 0
            if not 1 <= p <= MAX_DECIMAL_PRECISION or s > p:
                raise _invalid(
                    f"{written}({p}, {s}) needs 1 <= precision <= {MAX_DECIMAL_PRECISION} "
                    "and scale <= precision", name)
            values = (p, s)
        elif canonical == "TEXT" and values:
            if len(values) != 1 or values[0] < 1:
                raise _invalid(f"{written} takes one length >= 1", name)
        elif values:
            raise _invalid(f"type {written} takes no arguments", name)
        return ast.TypeSpec(canonical, values)

    def precision(self) -> bool:
        return True

    def type_params(self, *numbers: Token) -> list[Token]:
        return list(numbers)

    def in_namespace(self, name: Token) -> Token:
        return name

    def history(self) -> bool:
        return True

    # ---- backups, jobs, schedules ------------------------------------------------

    def backup_database(self, if_exists: bool | None, name: Token, target: str,
                        options: Options | None) -> ast.BackupDatabase:
        return ast.BackupDatabase(str(name), target, bool(if_exists), options or ())

    def restore_database(self, if_not_exists: bool | None, name: Token, target: str,
                         as_name: Token | None, options: Options | None) -> ast.RestoreDatabase:
        new_name = None if as_name is None else str(as_name)
        return ast.RestoreDatabase(str(name), target, new_name, bool(if_not_exists), options or ())

    def backup_databases(self, *args: Any) -> ast.BackupDatabases:
        *names, target, options = args
        return ast.BackupDatabases(tuple(str(n) for n in names), target, False, options or ())

    def backup_all(self, target: str, options: Options | None) -> ast.BackupDatabases:
        return ast.BackupDatabases((), target, True, options or ())

    def restore_all(self, target: str, options: Options | None) -> ast.RestoreAll:
        return ast.RestoreAll(target, options or ())

    def backup_table(self, *args: Any) -> ast.BackupTables:
        *refs, target, options = args
        return ast.BackupTables(tuple(refs), target, options or ())

    def restore_table(self, table: ast.TableRef, target: str, as_table: ast.TableRef | None,
                      options: Options | None) -> ast.RestoreTable:
        return ast.RestoreTable(table, target, as_table, options or ())

    def as_table(self, ref: ast.TableRef) -> ast.TableRef:
        return ref

    def show_backups(self, namespace: Token | None, target: str | None,
                     limit: int | None) -> ast.ShowBackups:
        return ast.ShowBackups(None if namespace is None else str(namespace), target, limit)

    def show_backup(self, backup_id: str, target: str | None,
                    options: Options | None) -> ast.ShowBackup:
        return ast.ShowBackup(backup_id, target, options or ())

    def verify_backup(self, backup_id: str, target: str | None,
                      options: Options | None) -> ast.VerifyBackup:
        return ast.VerifyBackup(backup_id, target, options or ())

    def drop_backup(self, if_exists: bool | None, backup_id: str,
                    target: str | None, options: Options | None) -> ast.DropBackup:
        return ast.DropBackup(backup_id, target, bool(if_exists), options or ())

    def attach_backups(self, target: str) -> ast.AttachBackups:
        return ast.AttachBackups(target)

    def show_jobs(self) -> ast.ShowJobs:
        return ast.ShowJobs()

    def show_job(self, job_id: str) -> ast.ShowJob:
        return ast.ShowJob(job_id)

    def kill_job(self, job_id: str) -> ast.KillJob:
        return ast.KillJob(job_id)

    def pause_job(self, job_id: str) -> ast.PauseJob:
        return ast.PauseJob(job_id)

    def resume_job(self, job_id: str) -> ast.ResumeJob:
        return ast.ResumeJob(job_id)

    def as_name(self, name: Token) -> Token:
        return name

    def for_database(self, name: Token) -> Token:
        return name

    def in_target(self, target: str) -> str:
        return target

    def limit(self, count: Token) -> int:
        return _int_param(count, "LIMIT", 0)

    def create_schedule(self, if_not_exists: bool | None, name: Token, namespace: Token,
                        target: str, when: tuple[str, str], keep_last: int | None,
                        options: Options | None) -> ast.CreateSchedule:
        kind, text = when
        every, cron = (text, None) if kind == "every" else (None, text)
        return ast.CreateSchedule(str(name), str(namespace), target, every, keep_last,
                                  bool(if_not_exists), options or (), cron)

    def every(self, text: str) -> tuple[str, str]:
        return "every", text

    def cron(self, text: str) -> tuple[str, str]:
        return "cron", text

    def show_schedules(self) -> ast.ShowSchedules:
        return ast.ShowSchedules()

    def drop_schedule(self, if_exists: bool | None, name: Token) -> ast.DropSchedule:
        return ast.DropSchedule(str(name), bool(if_exists))

    def start_archiving(self, name: Token, target: str,
                        options: Options | None) -> ast.StartArchiving:
        return ast.StartArchiving(str(name), target, options or ())

    def stop_archiving(self, name: Token) -> ast.StopArchiving:
        return ast.StopArchiving(str(name))

    def show_archives(self) -> ast.ShowArchives:
        return ast.ShowArchives()

    def show_restore_points(self, name: Token, target: str) -> ast.ShowRestorePoints:
        return ast.ShowRestorePoints(str(name), target)

    def verify_archive(self, name: Token, target: str,
                       options: Options | None) -> ast.VerifyArchive:
        return ast.VerifyArchive(str(name), target, options or ())

    def keep_last(self, count: Token) -> int:
        return _int_param(count, "KEEP LAST", 1)

    # ---- shared pieces -------------------------------------------------------------

    def if_exists(self) -> bool:
        return True

    def if_not_exists(self) -> bool:
        return True

    def cascade(self) -> bool:
        return True

    def table_ref(self, first: Token, second: Token | None) -> ast.TableRef:
        if second is None:
            return ast.TableRef(None, str(first))
        return ast.TableRef(str(first), str(second))

    def name(self, tok: Token) -> Token:
        """Quoted or not, a name obeys the name rule and is folded to lower case."""
        text = _unquote(tok, '"') if tok.type == "QUOTED_NAME" else str(tok)
        if not NAME_RE.match(text):
            raise _invalid(f"invalid name {tok}: names match [A-Za-z_][A-Za-z0-9_]*", tok)
        if len(text) > MAX_NAME_LENGTH:
            raise _invalid(
                f"name '{text[:20]}...' is {len(text)} characters; at most {MAX_NAME_LENGTH}", tok)
        return tok.update(value=text.lower())

    column_name = name

    def with_options(self, *options: tuple[Token, ast.OptionValue]) -> Options:
        seen: set[str] = set()
        for key, _ in options:
            if key in seen:
                raise _invalid(f"option '{key}' is given twice", key)
            seen.add(key)
        return tuple((str(key), value) for key, value in options)

    def option(self, key: Token, value: ast.DefaultValue) -> tuple[Token, ast.OptionValue]:
        return key, _option_number(key, value)

    def string_literal(self, tok: Token) -> str:
        return _unquote(tok, "'")

    def number_literal(self, tok: Token) -> int | decimal.Decimal:
        return _number(tok)

    def true_literal(self) -> bool:
        return True

    def false_literal(self) -> bool:
        return False

    def null_literal(self) -> None:
        return None

    def string(self, tok: Token) -> str:
        return _unquote(tok, "'")
