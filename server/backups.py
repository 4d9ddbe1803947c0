"""BACKUP, RESTORE and SHOW BACKUP(S) (VERIFY and DROP BACKUP: verify_drop.py).

Handlers check everything they can before a job exists (the caller, the
namespace, the target, the options), so a typo answers at once with a clear
error; the long work runs as a job (see backup_run, restore_run)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from catalog import Backup, Job, Namespace
from catalog.errors import (
    AlreadyExists,
    CairnError,
    InvalidArgument,
    NotFound,
)
from catalog.ids import new_id
from sqlgrammar import ast, to_sql
from storage.backup import Repository
from storage.backup.origin import listed_own, recorded_own, whose
from storage.backup.schema import LABEL_MAX, load_header
from storage.backup.selection import newest_first
from storage.backup.sets import being_written, writing_error
from storage.sql_text import KINDS, kind_of, sql_text

from . import visibility
from .backup_drops import (
    drop_beyond,
    origin_of,
    origins,
    with_message,
)
from .backup_records import forget_gone
from .backup_run import BackupPlan, run_backup, scope_text
from .dispatch import Role, Routes
from .jobs import JobContext, Work
from .namespaces import check_namespace_name
from .repos import repository
from .restore_run import RestorePlan, check_not_archived, parse_time, run_restore
from .result import Result
from .state import Cairn, Session

routes = Routes()

log = logging.getLogger("cairn.backup")

SECRET_OPTIONS = frozenset({"encryption_passphrase"})
BACKUP_OPTIONS = {"detached": bool, "label": str, "compression": str,
                  "encryption_passphrase": str, "keep_last": int}
SCHEDULE_OPTIONS: dict[str, type] = {"label": str, "compression": str}  # for every run
RESTORE_OPTIONS = {"backup_id": str, "as_of": str, "replace": bool, "detached": bool,
                   "encryption_passphrase": str}
VERIFY_OPTIONS = {"detached": bool, "encryption_passphrase": str}
SHOW_OPTIONS = {"encryption_passphrase": str}
# keep_last's result.not_read names at most these (a target of junk named like
# manifests grew the job's row by each one); not_read_count says how many.
NOT_READ_SHOWN = 100

BACKUP_COLUMNS = [
    ("backup_id", "TEXT"), ("namespace", "TEXT"), ("target", "TEXT"),
    ("created_at", "TIMESTAMP"), ("snapshot_at", "TIMESTAMP"), ("tables", "BIGINT"),
    ("rows", "BIGINT"), ("files", "BIGINT"), ("bytes", "BIGINT"), ("bytes_written", "BIGINT"),
    ("label", "TEXT"), ("encrypted", "BOOLEAN"),
    # Beyond the contract's list (which stays a prefix): stored row versions,
    # and what the backup holds ('database', or 'tables: t, u').
    ("row_versions", "BIGINT"), ("scope", "TEXT"),
    # whether it is a backup of this server's namespace of that name (origin.py)
    ("own", "BOOLEAN"),
]
SHOW_BACKUP_COLUMNS = [("table_name", "TEXT"), ("table_type", "TEXT"), ("schema_version", "BIGINT"),
                       ("rows", "BIGINT"), ("files", "BIGINT"), ("bytes", "BIGINT"),
                       ("row_versions", "BIGINT")]
# SHOW BACKUPS adds why a backup in the target cannot be read (null when it can).
SHOW_BACKUPS_COLUMNS = [*BACKUP_COLUMNS, ("error", "TEXT")]


def check_options(stmt_name: str, options: tuple[tuple[str, Any], ...],
                  allowed: Mapping[str, type]) -> dict[str, Any]:
    """Options as a dict, each known and of the right type, else INVALID_ARGUMENT."""
    out: dict[str, Any] = {}
    for key, value in options:
        want = allowed.get(key)
        if want is None:
            raise InvalidArgument(
                f"unknown option '{key}' for {stmt_name}; known: {', '.join(sorted(allowed))}"
            )
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            shown = (kind_of(value) if key in SECRET_OPTIONS
                     else sql_text(value))  # a secret is never echoed
            raise InvalidArgument(f"option '{key}' must be a {KINDS[want]}, not {shown}")
        if key == "label" and isinstance(value, str) and len(value) > LABEL_MAX:
            # what a manifest may hold: refused before any byte is copied
            raise InvalidArgument(f"option 'label' is {len(value)} characters; at most {LABEL_MAX}")
        out[key] = value
    return out


def redacted(stmt: Any) -> str:
    """The statement as SQL with every secret option replaced by '***'."""
    options = getattr(stmt, "options", ())
    masked = tuple((k, "***" if k in SECRET_OPTIONS else v) for k, v in options)
    return to_sql(replace(stmt, options=masked) if options else stmt)


def job_row(job: Job) -> Result:
    return Result.of_rows([("job_id", "TEXT"), ("status", "TEXT")],
                          [{"job_id": job.job_id, "status": job.status}],
                          message=f"Job '{job.job_id}' started")


def result_row(result: dict[str, Any], columns: list[tuple[str, str]], message: str) -> Result:
    return Result.of_rows(columns, [result], message=message)


# --- BACKUP -----------------------------------------------------------------


# Jobs that write into their target (`tmp/` files among what they write).
TMP_WRITERS = frozenset({"backup", "restore", "drop_backup", "prune"})
MAX_KEEP_LAST = 1_000_000  # keep_last / KEEP LAST (system.schedules shows it as a BIGINT)


def check_backup_options(opts: dict[str, Any]) -> None:
    """What BACKUP and CREATE SCHEDULE accept beyond the option types."""
    if opts.get("compression", "zstd") not in ("zstd", "none"):
        raise InvalidArgument("option 'compression' must be 'zstd' or 'none'")
    if opts.get("keep_last") is not None and not 1 <= opts["keep_last"] <= MAX_KEEP_LAST:
        raise InvalidArgument(f"option 'keep_last' must be from 1 to {MAX_KEEP_LAST:,}")


def backup_work(cairn: Cairn, namespace: str, repo_of: Callable[[], Repository],
                opts: dict[str, Any]) -> Work:
    """A backup job's work: back up, then apply keep_last. `repo_of` resolves the
    target (a scheduled run resolves it only when it runs)."""

    def work(ctx: JobContext) -> dict[str, Any]:
        repo = repo_of()
        plan = BackupPlan(namespace, repo, new_id("bk"), label=opts.get("label"),
                          compression=opts.get("compression", "zstd"),
                          passphrase=opts.get("encryption_passphrase"))
        result = run_backup(cairn, ctx, plan)
        if opts.get("keep_last") is not None:
            # The backup landed: its row says so (result, backup_id) however
            # keep_last ends (a failed one's job had no result).
            ctx.set(result=result)
            try:
                result["dropped"], unread = drop_beyond(cairn, ctx, repo, namespace,
                                                        opts["keep_last"], result["backup_id"])
                if unread:  # neither counted nor dropped: said, not only logged
                    result["not_read"] = unread[:NOT_READ_SHOWN]
                if len(unread) > NOT_READ_SHOWN:  # junk planted: the job's row stays small
                    result["not_read_count"] = len(unread)
            except CairnError as exc:
                # A KILL here stops keep_last only: the job is `failed`, not
                # `cancelled` (its backup is listed, valid and restorable).
                why = ctx.past_return(exc)
                raise with_message(why, f"backup '{result['backup_id']}' is complete, but "
                                        f"keep_last could not drop older ones: {why.message}"
                                   ) from exc
        return result

    return work


@routes.handles(ast.BackupDatabase, role="admin")
async def backup_database(cairn: Cairn, session: Session, stmt: ast.BackupDatabase) -> Result:
    opts = check_options("BACKUP", stmt.options, BACKUP_OPTIONS)
    check_backup_options(opts)
    check_namespace_name(stmt.namespace)

    def target() -> Repository | None:
        # One trip to a statement thread for both (each trip is a take of
        # the GIL beside the statements on the event loop).
        if cairn.catalog.get(Namespace, stmt.namespace) is None:
            return None
        return repository(cairn, stmt.target, opts.get("encryption_passphrase"),
                          opts.get("compression", "zstd"))

    repo = await cairn.run_target(stmt.target, target)
    if repo is None:
        if stmt.if_exists:
            return Result.of_message(
                f"Namespace '{stmt.namespace}' does not exist, nothing backed up")
        raise NotFound(f"Namespace '{stmt.namespace}' does not exist")
    job = await cairn.jobs.run("backup", session,
                               backup_work(cairn, stmt.namespace, lambda: repo, opts),
                               namespace=stmt.namespace, target=repo.uri,
                               statement=redacted(stmt), detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    return result_row(job.result, [
        ("job_id", "TEXT"), ("backup_id", "TEXT"), ("namespace", "TEXT"), ("target", "TEXT"),
        ("status", "TEXT"), ("tables", "BIGINT"), ("rows", "BIGINT"), ("files", "BIGINT"),
        ("bytes", "BIGINT"), ("bytes_written", "BIGINT"), ("row_versions", "BIGINT"),
    ], f"Backup '{job.result['backup_id']}' of namespace '{stmt.namespace}' completed")


# --- RESTORE ----------------------------------------------------------------


@routes.handles(ast.RestoreDatabase, role="admin")
async def restore_database(cairn: Cairn, session: Session, stmt: ast.RestoreDatabase) -> Result:
    opts = check_options("RESTORE", stmt.options, RESTORE_OPTIONS)
    if stmt.if_not_exists and opts.get("replace"):
        raise InvalidArgument("give IF NOT EXISTS (keep an existing namespace) or "
                              "replace = true (replace it), not both")
    if "as_of" in opts:
        parse_time(opts["as_of"])
    destination = stmt.as_name or stmt.namespace
    check_namespace_name(destination)
    await cairn.run(check_not_archived, cairn, destination)
    exists = await cairn.run(cairn.catalog.get, Namespace, destination) is not None
    if exists and stmt.if_not_exists:
        return Result.of_message(f"Namespace '{destination}' already exists, nothing restored")
    if exists and not opts.get("replace"):
        raise AlreadyExists(
            f"Namespace '{destination}' already exists; use WITH (replace = true) to replace it"
        )
    repo = await cairn.run_target(stmt.target, repository, cairn, stmt.target,
                                  opts.get("encryption_passphrase"))
    await cairn.run_target(stmt.target, repo.require_exists)
    plan = RestorePlan(stmt.namespace, destination, repo, backup_id=opts.get("backup_id"),
                       as_of=opts.get("as_of"), replace=bool(opts.get("replace")),
                       origin=await cairn.run(origin_of, cairn, stmt.namespace))
    job = await cairn.jobs.run(
        "restore", session, lambda ctx: run_restore(cairn, ctx, plan), namespace=destination,
        target=repo.uri, statement=redacted(stmt), detached=bool(opts.get("detached")),
    )
    if opts.get("detached"):
        return job_row(job)
    return result_row(job.result, [
        ("job_id", "TEXT"), ("backup_id", "TEXT"), ("namespace", "TEXT"), ("status", "TEXT"),
        ("tables", "BIGINT"), ("rows", "BIGINT"), ("files", "BIGINT"), ("bytes", "BIGINT"),
        ("row_versions", "BIGINT"),
    ], f"Namespace '{destination}' restored from backup '{job.result['backup_id']}'")


# --- listing ----------------------------------------------------------------


def summary(doc: dict[str, Any], target: str) -> dict[str, Any]:
    h = load_header(doc)
    return {
        "backup_id": h.backup_id, "namespace": h.namespace, "target": target,
        "created_at": h.created_at, "snapshot_at": h.snapshot_at,
        "tables": h.totals.tables, "rows": h.totals.live_rows, "row_versions": h.totals.rows,
        "files": h.totals.files,
        "bytes": h.totals.bytes, "bytes_written": h.totals.bytes_written,
        "label": h.label, "encrypted": h.encrypted,
        # unknown (NULL) without the passphrase: an encrypted backup keeps it sealed
        "scope": None if h.encrypted and "tables" not in doc else scope_text(h.scope),
        **whose(doc.get("namespace_record")),  # whose backup (an attached one's too)
    }


def _show_backups_role(stmt: ast.ShowBackups) -> Role:
    """The catalog's list is for everyone (targets shown without server paths);
    reading a target itself (IN 'target') is a backup operation: admin."""
    return "admin" if stmt.target is not None else "user"


@routes.handles(ast.ShowBackups, role=_show_backups_role)
async def show_backups(cairn: Cairn, session: Session, stmt: ast.ShowBackups) -> Result:
    def work() -> list[dict[str, Any]]:
        of = origins(cairn)  # whose backups are (`own`), as RESTORE tells them
        if stmt.target is None:
            records = [b for b in cairn.catalog.scan(Backup)
                       if stmt.namespace is None or b.namespace == stmt.namespace]
            rows = [{**{c: getattr(b, c, None) for c, _ in BACKUP_COLUMNS},
                     "own": recorded_own(of(b.namespace), b.server, b.namespace_created_at,
                                         b.job_id is not None)} for b in records]
        else:
            repo = repository(cairn, stmt.target)
            # Already newest first; a damaged backup of unknown age leads.
            listed, writing = repo.listing(stmt.namespace, light=True), being_written(repo)
            forget_gone(cairn, repo, stmt.namespace)  # another server dropped them
            rows = [_damaged(m, repo.uri) if "error" in m
                    else {**summary(m, repo.uri), **writing_error(m, writing),
                          "own": listed_own(of(m["namespace"]), m)} for m in listed]
            return rows[: stmt.limit] if stmt.limit is not None else rows
        rows.sort(key=newest_first, reverse=True)  # as a target's listing
        rows = visibility.rows_for(cairn.config, session, "backups", rows)
        return rows[: stmt.limit] if stmt.limit is not None else rows

    return Result.of_rows(SHOW_BACKUPS_COLUMNS, await cairn.run_target(stmt.target, work))


def _damaged(entry: dict[str, Any], target: str) -> dict[str, Any]:
    """A backup whose manifest cannot be read: what is known of it, and why."""
    return {"backup_id": entry["backup_id"], "namespace": entry.get("namespace"),
            "target": target, "created_at": entry.get("created_at"),
            "snapshot_at": entry.get("snapshot_at"), "error": entry["error"]}


def recorded_target(cairn: Cairn, backup_id: str, target: str | None) -> str | None:
    """The target `locate` reads: the given one, else the catalog's record's."""
    if target is not None:
        return target
    record = cairn.catalog.get(Backup, backup_id)
    return None if record is None else record.target


def locate(cairn: Cairn, backup_id: str, target: str | None,
           passphrase: str | None = None) -> Repository:
    """The repository holding `backup_id`: the given target, else the one the
    server's backup catalog recorded."""
    if target is not None:
        return repository(cairn, target, passphrase)
    record = cairn.catalog.get(Backup, backup_id)
    if record is None:
        raise NotFound(
            f"Backup '{backup_id}' is not in this server's catalog; name its target with IN '…'"
        )
    return repository(cairn, record.target, passphrase)


@routes.handles(ast.ShowBackup, role="admin")
async def show_backup(cairn: Cairn, session: Session, stmt: ast.ShowBackup) -> Result:
    opts = check_options("SHOW BACKUP", stmt.options, SHOW_OPTIONS)

    def work() -> list[dict[str, Any]]:
        repo = locate(cairn, stmt.backup_id, stmt.target, opts.get("encryption_passphrase"))
        m = repo.read_backup(stmt.backup_id)
        return [{
            "table_name": t.name, "table_type": t.table_type, "schema_version": t.schema_version,
            "rows": t.live_rows, "row_versions": t.rows, "files": len(t.files),
            "bytes": sum(f.size for f in t.files),
        } for t in m.tables]

    where = await cairn.run(recorded_target, cairn, stmt.backup_id, stmt.target)
    return Result.of_rows(SHOW_BACKUP_COLUMNS, await cairn.run_target(where, work))
