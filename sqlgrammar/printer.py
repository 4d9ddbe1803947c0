"""Statement dataclasses -> canonical SQL text.

Used to log statements and to test the grammar: for every statement `s`,
`parse_one(to_sql(s)) == s`. Keywords are upper case, optional noise words
(COLUMN, TABLE after DESCRIBE) are always written, defaults are left out, and
names that are keywords are quoted so they read back as names.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable
from typing import Any

from . import ast
from .parser import KEYWORDS

_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")


def name(text: str) -> str:
    """A name as SQL: bare when that reads back as the same name, else quoted."""
    if _PLAIN_NAME.match(text) and text.upper() not in KEYWORDS:
        return text
    return '"' + text.replace('"', '""') + '"'


def literal(value: ast.DefaultValue) -> str:
    """An option value or DEFAULT as SQL. bool is tested before int (it is one)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, ast.ExponentNumber):
        return value.sql  # `5e0` is a DOUBLE, `5` an INTEGER
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no SQL literal")
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"not an SQL literal: {value!r}")


def _table(ref: ast.TableRef) -> str:
    return name(ref.name) if ref.namespace is None else f"{name(ref.namespace)}.{name(ref.name)}"


def _type(spec: ast.TypeSpec) -> str:
    type_name = "VARCHAR" if spec.name == "TEXT" and spec.params else spec.name
    if spec.params:
        return f"{type_name}({', '.join(str(p) for p in spec.params)})"
    return type_name


def _column(col: ast.ColumnDef) -> str:
    parts = [name(col.name), _type(col.type)]
    if col.not_null:
        parts.append("NOT NULL")
    if col.primary_key:
        parts.append("PRIMARY KEY")
    if col.has_default:
        parts.append(f"DEFAULT {literal(col.default)}")
    return " ".join(parts)


def _with(options: tuple[tuple[str, ast.OptionValue], ...]) -> str:
    if not options:
        return ""
    return " WITH (" + ", ".join(f"{name(k)} = {literal(v)}" for k, v in options) + ")"


def _opt(flag: bool, text: str) -> str:
    return text if flag else ""


def _in(target: str | None) -> str:
    return "" if target is None else f" IN {literal(target)}"


def _create_namespace(s: ast.CreateNamespace) -> str:
    return f"CREATE NAMESPACE {_opt(s.if_not_exists, 'IF NOT EXISTS ')}{name(s.name)}"


def _drop_namespace(s: ast.DropNamespace) -> str:
    return (f"DROP NAMESPACE {_opt(s.if_exists, 'IF EXISTS ')}{name(s.name)}"
            f"{_opt(s.cascade, ' CASCADE')}")


def _create_table(s: ast.CreateTable) -> str:
    kind = "" if s.kind == "shared" else f"{s.kind.upper()} "
    columns = ", ".join(_column(c) for c in s.columns)
    return (f"CREATE {kind}TABLE {_opt(s.if_not_exists, 'IF NOT EXISTS ')}{_table(s.table)} "
            f"({columns}){_with(s.options)}")


def _drop_table(s: ast.DropTable) -> str:
    return f"DROP TABLE {_opt(s.if_exists, 'IF EXISTS ')}{_table(s.table)}"


def _add_column(s: ast.AlterTableAddColumn) -> str:
    return (f"ALTER TABLE {_opt(s.if_exists, 'IF EXISTS ')}{_table(s.table)} ADD COLUMN "
            f"{_opt(s.if_not_exists, 'IF NOT EXISTS ')}{_column(s.column)}")


def _drop_column(s: ast.AlterTableDropColumn) -> str:
    return (f"ALTER TABLE {_opt(s.if_exists, 'IF EXISTS ')}{_table(s.table)} DROP COLUMN "
            f"{_opt(s.column_if_exists, 'IF EXISTS ')}{name(s.column)}")


def _show_tables(s: ast.ShowTables) -> str:
    return "SHOW TABLES" + ("" if s.namespace is None else f" IN {name(s.namespace)}")


def _describe(s: ast.DescribeTable) -> str:
    return f"DESCRIBE TABLE {_table(s.table)}{_opt(s.history, ' HISTORY')}"


def _backup(s: ast.BackupDatabase) -> str:
    return (f"BACKUP DATABASE {_opt(s.if_exists, 'IF EXISTS ')}{name(s.namespace)} "
            f"TO {literal(s.target)}{_with(s.options)}")


def _restore(s: ast.RestoreDatabase) -> str:
    as_name = "" if s.as_name is None else f" AS {name(s.as_name)}"
    return (f"RESTORE DATABASE {_opt(s.if_not_exists, 'IF NOT EXISTS ')}{name(s.namespace)} "
            f"FROM {literal(s.target)}{as_name}{_with(s.options)}")


def _backup_databases(s: ast.BackupDatabases) -> str:
    what = "ALL" if s.all else "DATABASE " + ", ".join(name(n) for n in s.namespaces)
    return f"BACKUP {what} TO {literal(s.target)}{_with(s.options)}"


def _backup_tables(s: ast.BackupTables) -> str:
    return (f"BACKUP TABLE {', '.join(_table(t) for t in s.tables)} "
            f"TO {literal(s.target)}{_with(s.options)}")


def _restore_table(s: ast.RestoreTable) -> str:
    as_table = "" if s.as_table is None else f" AS {_table(s.as_table)}"
    return (f"RESTORE TABLE {_table(s.table)} FROM {literal(s.target)}{as_table}"
            f"{_with(s.options)}")


def _show_backups(s: ast.ShowBackups) -> str:
    text = "SHOW BACKUPS"
    if s.namespace is not None:
        text += f" FOR DATABASE {name(s.namespace)}"
    text += _in(s.target)
    if s.limit is not None:
        text += f" LIMIT {s.limit}"
    return text


def _show_backup(s: ast.ShowBackup) -> str:
    return f"SHOW BACKUP {literal(s.backup_id)}{_in(s.target)}{_with(s.options)}"


def _verify_backup(s: ast.VerifyBackup) -> str:
    return f"VERIFY BACKUP {literal(s.backup_id)}{_in(s.target)}{_with(s.options)}"


def _drop_backup(s: ast.DropBackup) -> str:
    return (f"DROP BACKUP {_opt(s.if_exists, 'IF EXISTS ')}{literal(s.backup_id)}"
            f"{_in(s.target)}{_with(s.options)}")


def _create_schedule(s: ast.CreateSchedule) -> str:
    keep = "" if s.keep_last is None else f" KEEP LAST {s.keep_last}"
    when = f"CRON {literal(s.cron)}" if s.cron is not None else f"EVERY {literal(s.every)}"
    return (f"CREATE SCHEDULE {_opt(s.if_not_exists, 'IF NOT EXISTS ')}{name(s.name)} "
            f"FOR BACKUP DATABASE {name(s.namespace)} TO {literal(s.target)} "
            f"{when}{keep}{_with(s.options)}")


def _drop_schedule(s: ast.DropSchedule) -> str:
    return f"DROP SCHEDULE {_opt(s.if_exists, 'IF EXISTS ')}{name(s.name)}"


_PRINTERS: dict[type[ast.Statement], Callable[[Any], str]] = {
    ast.CreateNamespace: _create_namespace,
    ast.DropNamespace: _drop_namespace,
    ast.ShowNamespaces: lambda s: "SHOW NAMESPACES",
    ast.CreateTable: _create_table,
    ast.DropTable: _drop_table,
    ast.AlterTableAddColumn: _add_column,
    ast.AlterTableDropColumn: _drop_column,
    ast.ShowTables: _show_tables,
    ast.DescribeTable: _describe,
    ast.FlushTable: lambda s: f"FLUSH TABLE {_table(s.table)}",
    ast.FlushAllTables: lambda s: f"FLUSH ALL TABLES IN {name(s.namespace)}",
    ast.BackupDatabase: _backup,
    ast.RestoreDatabase: _restore,
    ast.BackupTables: _backup_tables,
    ast.BackupDatabases: _backup_databases,
    ast.RestoreAll: lambda s: f"RESTORE ALL FROM {literal(s.target)}{_with(s.options)}",
    ast.RestoreTable: _restore_table,
    ast.ShowBackups: _show_backups,
    ast.ShowBackup: _show_backup,
    ast.VerifyBackup: _verify_backup,
    ast.DropBackup: _drop_backup,
    ast.AttachBackups: lambda s: f"ATTACH BACKUPS FROM {literal(s.target)}",
    ast.ShowJobs: lambda s: "SHOW JOBS",
    ast.ShowJob: lambda s: f"SHOW JOB {literal(s.job_id)}",
    ast.KillJob: lambda s: f"KILL JOB {literal(s.job_id)}",
    ast.PauseJob: lambda s: f"PAUSE JOB {literal(s.job_id)}",
    ast.ResumeJob: lambda s: f"RESUME JOB {literal(s.job_id)}",
    ast.CreateSchedule: _create_schedule,
    ast.ShowSchedules: lambda s: "SHOW SCHEDULES",
    ast.DropSchedule: _drop_schedule,
    ast.StartArchiving: lambda s: (f"START ARCHIVING DATABASE {name(s.namespace)} "
                                   f"TO {literal(s.target)}{_with(s.options)}"),
    ast.StopArchiving: lambda s: f"STOP ARCHIVING DATABASE {name(s.namespace)}",
    ast.ShowArchives: lambda s: "SHOW ARCHIVES",
    ast.ShowRestorePoints: lambda s: (f"SHOW RESTORE POINTS FOR DATABASE {name(s.namespace)} "
                                      f"IN {literal(s.target)}"),
    ast.VerifyArchive: lambda s: (f"VERIFY ARCHIVE FOR DATABASE {name(s.namespace)} "
                                  f"IN {literal(s.target)}{_with(s.options)}"),
    ast.Query: lambda s: s.sql,
    ast.Explain: lambda s: ("EXPLAIN ANALYZE " if s.analyze else "EXPLAIN ") + s.query.sql,
}


def to_sql(statement: ast.Statement) -> str:
    """Canonical SQL for any statement; a Query prints the text sqlglot normalised."""
    try:
        printer = _PRINTERS[type(statement)]
    except KeyError:
        raise TypeError(f"no SQL printer for {type(statement).__name__}") from None
    return printer(statement)
