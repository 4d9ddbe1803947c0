"""What the statement modules need of the engine, as narrow interfaces: dml.py,
values.py and system_tables.py take these, and `Engine` satisfies them, so no
module below the engine imports it."""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa
from sqlglot import exp

from catalog import Catalog, Table

from .archive.changes import ChangeLog
from .buffer import TableState
from .files import FileStore
from .keys import FileRanges
from .query import Plan


class Selector(Protocol):
    """Runs an already checked query tree."""

    def select(
        self,
        expression: exp.Expression,
        user: str | None,
        default_namespace: str | None,
        *,
        show_deleted: bool | None = None,
        timeout: float | None = None,
        one_thread: bool = False,
    ) -> pa.Table: ...


class Writer(Selector, Protocol):
    """What INSERT, UPDATE and DELETE need: tables, their files, and DuckDB."""

    catalog: Catalog
    files: FileStore
    file_ranges: FileRanges
    changes: ChangeLog

    def state(self, namespace: str, name: str) -> TableState: ...

    def run_plan(self, plan: Plan, timeout: float | None = None) -> pa.Table: ...


class SystemSource(Protocol):
    """What the system tables are built from."""

    catalog: Catalog
    system_cache: dict[str, tuple[Any, pa.Table]]
    changes: ChangeLog

    def stats(self, rec: Table) -> dict[str, int]: ...
