"""BACKUP TABLE and RESTORE TABLE: the same guarantees as a namespace's backup
and restore, for some of its tables.

BACKUP TABLE ns.t [, ns.u …] is a backup of namespace ns holding only the named
tables, at one instant (one engine snapshot of those tables); its manifest
says so (`scope`, storage/backup/schema.py) and SHOW BACKUPS shows it
('tables: t, u'). RESTORE TABLE ns.t takes the newest backup of ns that holds
t (a namespace's backup or a table backup naming t), fetches and checks every
file of that table, then installs it into the existing destination namespace
in one catalog batch (storage/install.py `install_table`; with `replace`, the
old table goes in the same batch)."""

from __future__ import annotations

from typing import Any

import msgspec

from catalog import Namespace, Table, table_key
from catalog.errors import AlreadyExists, InvalidArgument, NotFound
from catalog.ids import new_id
from sqlgrammar import ast
from storage.backup.origin import choose_own
from storage.backup.schema import FileEntry, load
from storage.inflight import workers_for
from storage.install import Restore

from .backup_drops import origin_of
from .backup_records import holding_table, refuse_newer_gone
from .backup_run import BackupPlan, run_backup
from .backups import (
    BACKUP_OPTIONS,
    RESTORE_OPTIONS,
    check_backup_options,
    check_options,
    job_row,
    redacted,
    result_row,
)
from .dispatch import Routes
from .jobs import JobContext
from .namespaces import check_namespace_name
from .repos import repository
from .restore_hold import hold
from .restore_run import check_not_archived, parse_time
from .result import Result
from .state import Cairn, Session
from .tables import resolve
from .throttle import Throttle

routes = Routes()

# keep_last counts a namespace's backups; for a table backup it is refused
# rather than guessed (which backups would be "the same" ones?).
TABLE_BACKUP_OPTIONS = {k: v for k, v in BACKUP_OPTIONS.items() if k != "keep_last"}
# as_of picks the newest backup taken at or before it; archived changes are
# not replayed for one table (RESTORE DATABASE does that).
TABLE_RESTORE_OPTIONS = RESTORE_OPTIONS

BACKUP_TABLE_COLUMNS = [
    ("job_id", "TEXT"), ("backup_id", "TEXT"), ("namespace", "TEXT"), ("target", "TEXT"),
    ("status", "TEXT"), ("tables", "BIGINT"), ("rows", "BIGINT"), ("files", "BIGINT"),
    ("bytes", "BIGINT"), ("bytes_written", "BIGINT"), ("row_versions", "BIGINT"),
]
RESTORE_TABLE_COLUMNS = [
    ("job_id", "TEXT"), ("backup_id", "TEXT"), ("namespace", "TEXT"), ("table_name", "TEXT"),
    ("status", "TEXT"), ("rows", "BIGINT"), ("files", "BIGINT"), ("bytes", "BIGINT"),
    ("row_versions", "BIGINT"),
]


def _tables_exist(cairn: Cairn, namespace: str, names: list[str]) -> None:
    if cairn.catalog.get(Namespace, namespace) is None:
        raise NotFound(f"Namespace '{namespace}' does not exist")
    for name in names:
        if cairn.catalog.get(Table, table_key(namespace, name)) is None:
            raise NotFound(f"Table '{namespace}.{name}' does not exist")


@routes.handles(ast.BackupTables, role="admin")
async def backup_tables(cairn: Cairn, session: Session, stmt: ast.BackupTables) -> Result:
    opts = check_options("BACKUP TABLE", stmt.options, TABLE_BACKUP_OPTIONS)
    check_backup_options(opts)
    refs = [resolve(session, ref) for ref in stmt.tables]
    namespaces = sorted({ns for ns, _ in refs})
    if len(namespaces) > 1:
        raise InvalidArgument(
            "BACKUP TABLE takes tables of one namespace; back up each namespace's tables "
            "with its own statement")
    (namespace,) = namespaces
    names = [name for _, name in refs]
    if len(set(names)) != len(names):
        raise InvalidArgument("BACKUP TABLE names a table twice")
    check_namespace_name(namespace)
    await cairn.run(_tables_exist, cairn, namespace, names)
    repo = await cairn.run_target(stmt.target, repository, cairn, stmt.target,
                                  opts.get("encryption_passphrase"),
                                  opts.get("compression", "zstd"))

    def work(ctx: JobContext) -> dict[str, Any]:
        plan = BackupPlan(namespace, repo, new_id("bk"), label=opts.get("label"),
                          compression=opts.get("compression", "zstd"), tables=names)
        result = run_backup(cairn, ctx, plan)
        return result

    job = await cairn.jobs.run("backup", session, work, namespace=namespace, target=repo.uri,
                               statement=redacted(stmt), detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    return result_row(job.result, BACKUP_TABLE_COLUMNS,
                      f"Backup '{job.result['backup_id']}' of tables "
                      f"{', '.join(f'{namespace}.{n}' for n in names)} completed")


def _holds(table: str) -> Any:
    """Whether a listed backup can serve RESTORE TABLE of `table`: a table
    backup naming it, or a namespace's backup whose tables (when the listing
    read them: not an encrypted body unopened) include it. A newer backup
    taken after the table was dropped was picked, and the restore was NOT_FOUND."""
    def accept(header: dict[str, Any]) -> bool:
        scope = header.get("scope")
        if scope is not None and scope.get("kind") == "tables":
            return table in scope["tables"]
        tables = header.get("tables")
        return not isinstance(tables, list) or any(
            isinstance(t, dict) and t.get("name") == table for t in tables)
    return accept


@routes.handles(ast.RestoreTable, role="admin")
async def restore_table(cairn: Cairn, session: Session, stmt: ast.RestoreTable) -> Result:
    opts = check_options("RESTORE TABLE", stmt.options, TABLE_RESTORE_OPTIONS)
    if "backup_id" in opts and "as_of" in opts:
        raise InvalidArgument("give backup_id or as_of, not both")
    if "as_of" in opts:
        parse_time(opts["as_of"])
    source, table = resolve(session, stmt.table)
    dest, dest_table = resolve(session, stmt.as_table or stmt.table)
    check_namespace_name(dest)
    replace = bool(opts.get("replace"))

    def check_destination() -> None:
        if cairn.catalog.get(Namespace, dest) is None:
            raise NotFound(f"Namespace '{dest}' does not exist; RESTORE TABLE restores into "
                           "an existing namespace")
        check_not_archived(cairn, dest)
        if cairn.catalog.get(Table, table_key(dest, dest_table)) is not None and not replace:
            raise AlreadyExists(f"Table '{dest}.{dest_table}' already exists; use WITH "
                                "(replace = true) to replace it")

    await cairn.run(check_destination)
    repo = await cairn.run_target(stmt.target, repository, cairn, stmt.target,
                                  opts.get("encryption_passphrase"))
    await cairn.run_target(stmt.target, repo.require_exists)

    taken: list[str] = []  # the chosen backup's snapshot_at (the answer's message)

    def work(ctx: JobContext) -> dict[str, Any]:
        m = load(choose_own(repo, source, opts.get("backup_id"), opts.get("as_of"),
                            _holds(table), origin_of(cairn, source), f"table '{source}.{table}'",
                            table))
        if opts.get("backup_id") is None:  # not an older one in a newer one's stead
            refuse_newer_gone(cairn, repo, f"backup holding table '{source}.{table}'",
                              m.backup_id, m.snapshot_at, opts.get("as_of"),
                              holding_table(source, table))
        ctx.set(backup_id=m.backup_id)
        taken.append(m.snapshot_at)
        entry = next((t for t in m.tables if t.name == table), None)
        if entry is None:
            raise NotFound(f"backup '{m.backup_id}' of namespace '{source}' has no table "
                           f"'{table}'")
        one = msgspec.structs.replace(m, tables=[msgspec.structs.replace(entry, name=dest_table)])
        check_destination()
        throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
        restore = Restore(one, dest, replace=replace, table_only=True, table_from=table,
                          guard=lambda: check_not_archived(cairn, dest),
                          workers=1 if throttle.rate > 0 else workers_for(repo.target.kind))
        ctx.progress(files_total=restore.files_total, bytes_total=restore.bytes_total,
                     files_done=0, bytes_done=0, force=True)
        ctx.set(cleanup={"namespace": dest, "table": dest_table,
                         "table_uids": sorted(restore.table_uids.values())})

        stored = {o.oid: o.size for o in m.objects}

        def fetch(f: FileEntry, path: Any, on_bytes: Any) -> None:
            repo.read_object_to(f.oid, str(path), f.size, on_bytes=on_bytes,
                                should_stop=lambda: ctx.cancelled, sha256=f.sha256,
                                stored_size=stored.get(f.oid))

        with hold(repo, [m], ctx):  # no DROP BACKUP or keep_last pulls them away
            cairn.engine.restore(restore, fetch, ctx,
                                 throttle.spent if throttle.rate > 0 else None)
            ctx.land()  # installed: a full data directory no longer fails the job
        return {"job_id": ctx.job_id, "backup_id": m.backup_id, "namespace": dest,
                "table_name": dest_table, "status": "completed", "rows": restore.live_rows,
                "files": len(entry.files), "bytes": sum(f.size for f in entry.files),
                "row_versions": entry.rows}

    job = await cairn.jobs.run("restore", session, work, namespace=dest, target=repo.uri,
                               statement=redacted(stmt), detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    message = f"Table '{dest}.{dest_table}' restored from backup '{job.result['backup_id']}'"
    if "as_of" in opts and taken:
        # Said, as the table is as of the backup, not as of `as_of`: a RESTORE
        # TABLE from an archive's target answered as if it were, its rows
        # those of the base backup START ARCHIVING took (maybe days older).
        message += (f", taken at {taken[-1]}: the table is as of then, as archived "
                    "changes are not replayed for one table (RESTORE DATABASE … AS … "
                    "WITH (as_of) replays them)")
    return result_row(job.result, RESTORE_TABLE_COLUMNS, message)
