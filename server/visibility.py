"""What a caller with role `user` may see: only their own jobs, no server
paths anywhere (job statements and errors, backup targets, schedule targets,
archive targets and errors, error messages), and no count of other users'
rows: system.tables counts only their own rows of a USER table, their flush
jobs' results leave out `all_rows`, backups (of whole namespaces, every
user's rows) show no rows, files or bytes, and archives (which ship every
user's writes) no segments, bytes, lag or archived time.

A local path under a backup root is shown as `<backup root>/rest` (the second
root as `<backup root 2>/rest`, ...), a path under the data directory as
`<data dir>/rest`. Admins see everything as stored. Every answer that shows
jobs, backups or schedules to a caller goes through here (system tables in a
query, SHOW BACKUPS, SHOW SCHEDULES, error bodies)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from catalog.errors import CairnError
from storage.buffer import TableState
from storage.system_tables import COUNTS, user_stats

from .config import Config
from .state import Session

# Columns of system tables that may hold a server path, per table.
PATH_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": ("target", "statement", "error_message", "result"),
    "backups": ("target",),
    "schedules": ("target", "last_status"),  # a run waiting for room names the data dir
    "archives": ("target", "last_error"),
}


# Figures of a backup, which holds every user's rows of its namespace.
BACKUP_COUNTS = ("rows", "row_versions", "files", "bytes", "bytes_written")
# Figures of a continuous archive, which ships every user's writes to its
# namespace: its segments and bytes grow with them, lag_ms and archived_until
# move with them (alice's writes to her USER table showed in bob's bytes).
ARCHIVE_FIGURES = ("segments", "bytes", "lag_ms", "archived_until")
# A role-user's flush job result's count of every user's rows (server/tables.py).
ADMIN_ONLY_RESULT = ("all_rows",)


def restricted(session: Session) -> bool:
    return not session.is_admin


def _prefixes(config: Config) -> list[tuple[str, str]]:
    """(absolute path, what to show instead), longest path first."""
    out: list[tuple[str, str]] = []
    for i, root in enumerate(config.backup_roots):
        label = "<backup root>" if i == 0 else f"<backup root {i + 1}>"
        for path in {os.path.abspath(root), os.path.realpath(root)}:
            out.append((path.rstrip("/"), label))
    for path in {os.path.abspath(config.data_dir), os.path.realpath(config.data_dir)}:
        out.append((path.rstrip("/"), "<data dir>"))
    return sorted(out, key=lambda p: len(p[0]), reverse=True)


def scrubber(config: Config) -> Callable[[str], str]:
    """A function that replaces every server path prefix in a text."""
    prefixes = [(p, label) for p, label in _prefixes(config) if p]

    def scrub(text: str) -> str:
        for path, label in prefixes:
            if path in text:
                text = text.replace(path, label)
        return text

    return scrub


def scrub_value(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, scrub) for v in value]
    return value


def scrub_message(config: Config, session: Session, message: str) -> str:
    """An error message as this caller may read it."""
    return scrubber(config)(message) if restricted(session) else message


def rows_for(config: Config, session: Session, kind: str,
             rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of jobs/backups/schedules (dicts) as this caller may see them."""
    if not restricted(session):
        return rows
    if kind == "jobs":
        rows = [{**r, "result": _result(r.get("result"))} if "result" in r else r for r in rows
                if session.user_id is not None and r.get("user_id") == session.user_id]
    hidden = {"backups": BACKUP_COUNTS, "archives": ARCHIVE_FIGURES}.get(kind, ())
    if hidden:
        rows = [{**r, **dict.fromkeys(c for c in hidden if c in r)} for r in rows]
    cols = PATH_COLUMNS.get(kind, ())
    if not cols:
        return rows
    scrub = scrubber(config)
    return [{k: scrub_value(v, scrub) if k in cols else v for k, v in r.items()} for r in rows]


def _result(value: Any) -> Any:
    """A job's result without what only admins see."""
    if isinstance(value, dict) and any(k in value for k in ADMIN_ONLY_RESULT):
        return {k: v for k, v in value.items() if k not in ADMIN_ONLY_RESULT}
    return value


def _replaced(table: pa.Table, columns: tuple[str, ...],
              figures: list[dict[str, int] | None]) -> pa.Table:
    """`table` with its `columns` taken from `figures`, one per row: None
    keeps the row's values, a dict gives them (NULL for those it lacks)."""
    for col in columns:
        i = table.schema.get_field_index(col)
        if i < 0:
            continue
        field = table.schema.field(i)
        old = table.column(i).to_pylist()
        new = [v if f is None else f.get(col) for v, f in zip(old, figures, strict=True)]
        table = table.set_column(i, field, pa.array(new, field.type))
    return table


def _own_tables(table: pa.Table, session: Session,
                state: Callable[[str, str], TableState] | None) -> pa.Table:
    """system.tables with a USER table's counts of the caller's rows only
    (NULL when it cannot say: no engine, or the table went meanwhile)."""
    kinds = table.column("table_type").to_pylist()
    if "user" not in kinds:
        return table
    namespaces = table.column("namespace").to_pylist()
    names = table.column("table_name").to_pylist()
    figures: list[dict[str, int] | None] = []
    for kind, ns, name in zip(kinds, namespaces, names, strict=True):
        mine: dict[str, int] | None = None if kind != "user" else {}
        if kind == "user" and state is not None:
            with contextlib.suppress(CairnError):  # dropped while we looked: NULLs
                mine = user_stats(state(ns, name), session.user_id)
        figures.append(mine)
    return _replaced(table, COUNTS, figures)


def system_table_for(config: Config, session: Session,
                     state: Callable[[str, str], TableState] | None = None
                     ) -> Callable[[str, pa.Table], pa.Table]:
    """A filter the engine applies to each `system.<name>` table a query reads.
    `state(ns, name)`: a table's state, for a USER table's own counts."""

    def view(name: str, table: pa.Table) -> pa.Table:
        if not restricted(session):
            return table
        if name == "tables":
            return _own_tables(table, session, state)
        if name not in PATH_COLUMNS:
            return table
        if name == "jobs":
            users = table.column("user_id").to_pylist()
            keep = [session.user_id is not None and u == session.user_id for u in users]
            table = table.filter(pa.array(keep, pa.bool_()))
        if name in ("backups", "archives"):
            hidden = BACKUP_COUNTS if name == "backups" else ARCHIVE_FIGURES
            table = _replaced(table, hidden, [{}] * table.num_rows)
        scrub = scrubber(config)
        for col in PATH_COLUMNS[name]:
            i = table.schema.get_field_index(col)
            if i < 0:
                continue
            field = table.schema.field(i)
            values = table.column(i).to_pylist()
            if field.metadata and field.metadata.get(b"cairn.type") == b"JSON":
                new = [None if v is None else json.dumps(_result(scrub_value(json.loads(v), scrub)))
                       for v in values]
            else:
                new = [None if v is None else scrub(v) for v in values]
            table = table.set_column(i, field, pa.array(new, field.type))
        return table

    return view
