"""What a caller with role `user` may see: only their own jobs, and no server
paths anywhere (job statements and errors, backup targets, schedule targets,
archive targets and errors, error messages).

A local path under a backup root is shown as `<backup root>/rest` (the second
root as `<backup root 2>/rest`, ...), a path under the data directory as
`<data dir>/rest`. Admins see everything as stored. Every answer that shows
jobs, backups or schedules to a caller goes through here (system tables in a
query, SHOW BACKUPS, SHOW SCHEDULES, error bodies)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from .config import Config
from .state import Session

# Columns of system tables that may hold a server path, per table.
PATH_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": ("target", "statement", "error_message", "result"),
    "backups": ("target",),
    "schedules": ("target",),
    "archives": ("target", "last_error"),
}


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
        rows = [r for r in rows
                if session.user_id is not None and r.get("user_id") == session.user_id]
    cols = PATH_COLUMNS.get(kind, ())
    if not cols:
        return rows
    scrub = scrubber(config)
    return [{k: scrub_value(v, scrub) if k in cols else v for k, v in r.items()} for r in rows]


def system_table_for(config: Config, session: Session) -> Callable[[str, pa.Table], pa.Table]:
    """A filter the engine applies to each `system.<name>` table a query reads."""

    def view(name: str, table: pa.Table) -> pa.Table:
        if not restricted(session) or name not in PATH_COLUMNS:
            return table
        if name == "jobs":
            users = table.column("user_id").to_pylist()
            keep = [session.user_id is not None and u == session.user_id for u in users]
            table = table.filter(pa.array(keep, pa.bool_()))
        scrub = scrubber(config)
        for col in PATH_COLUMNS[name]:
            i = table.schema.get_field_index(col)
            if i < 0:
                continue
            field = table.schema.field(i)
            values = table.column(i).to_pylist()
            if field.metadata and field.metadata.get(b"cairn.type") == b"JSON":
                new = [None if v is None else json.dumps(scrub_value(json.loads(v), scrub))
                       for v in values]
            else:
                new = [None if v is None else scrub(v) for v in values]
            table = table.set_column(i, field, pa.array(new, field.type))
        return table

    return view
