"""BACKUP DATABASE: one namespace, as of one instant, into a repository.

The job enters storage twice: `Engine.snapshot` (the namespace at one instant,
every file ready to store) and `storage.backup.write_backup` (objects, then the
manifest). What stays here is the job: its row, progress, cancellation, the
throttle, and the backup catalog record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from catalog import Backup
from storage.backup import Repository, write_backup
from storage.backup.schema import Scope

from .jobs import JobContext
from .state import Cairn
from .throttle import Throttle

log = logging.getLogger("cairn.backup")


@dataclass
class BackupPlan:
    namespace: str
    repo: Repository
    backup_id: str
    label: str | None = None
    compression: str = "zstd"
    cut: tuple[int, int] | None = None  # set by run_backup: the snapshot's (lsn, time)
    tables: list[str] | None = None  # BACKUP TABLE: these tables only (None: all)


def run_backup(cairn: Cairn, ctx: JobContext, plan: BackupPlan) -> dict[str, Any]:
    """The job's work: snapshot, store, record."""
    ctx.set(backup_id=plan.backup_id,
            cleanup={"target": plan.repo.uri, "backup_id": plan.backup_id})
    ctx.check_cancelled()
    throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
    scope = None if plan.tables is None else Scope(kind="tables", tables=sorted(plan.tables))
    with cairn.engine.snapshot({plan.namespace: plan.tables}) as snap:
        ctx.fault("backup.snapshot_taken")
        (image,) = snap.namespaces
        # Archived changes continue a base exactly at its snapshot's cut.
        plan.cut = snap.cuts[plan.namespace]
        m = write_backup(plan.repo, image, plan.backup_id, snapshot_at=snap.snapshot_at,
                         label=plan.label, work=ctx,
                         spent=throttle.spent if throttle.rate > 0 else None, scope=scope)
    record = Backup(
        backup_id=m.backup_id, namespace=m.namespace, target=plan.repo.uri,
        created_at=m.created_at, snapshot_at=m.snapshot_at, tables=m.totals.tables,
        rows=m.totals.live_rows, row_versions=m.totals.rows, files=m.totals.files,
        bytes=m.totals.bytes,
        bytes_written=m.totals.bytes_written, label=m.label, encrypted=m.encrypted,
        job_id=ctx.job_id, scope=scope_text(m.scope),
    )
    cairn.catalog.put(record)
    return {
        "job_id": ctx.job_id, "backup_id": m.backup_id, "namespace": m.namespace,
        "target": plan.repo.uri, "status": "completed", "tables": record.tables,
        "rows": record.rows, "row_versions": record.row_versions, "files": record.files,
        "bytes": record.bytes,
        "bytes_written": record.bytes_written,
    }


def scope_text(scope: Scope | None) -> str:
    """What a backup holds, as SHOW BACKUPS says it: 'database' (the whole
    namespace), 'tables: t, u', or for a member of a backup set
    'all (set bk-…: a, b)' / 'databases (set bk-…: a, b)'."""
    if scope is None:
        return "database"
    if scope.kind == "tables":
        return "tables: " + ", ".join(scope.tables)
    return f"{scope.kind} (set {scope.set_id}: {', '.join(scope.namespaces)})"
