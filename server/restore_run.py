"""RESTORE DATABASE: a backup becomes a namespace, all at once or not at all.

The job enters storage twice: the repository for the backup's manifest
(decoded and checked through its one type, storage/backup/schema.py), and
`Engine.restore`, which fetches every file into place and installs the
namespace in one catalog batch (storage/install.py). What stays here is the
job: choosing the backup, progress, cancellation and the throttle."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from catalog import Archive, DataFile, Namespace
from catalog.errors import AlreadyExists, BackupInvalid, Cancelled, InvalidArgument, NotFound
from catalog.ids import new_id
from storage.archive import pitr, replay
from storage.archive.store import parse_us
from storage.backup import Manifest, Repository, selection
from storage.backup.origin import Origin, choose_own, taken_as_own
from storage.backup.restored import era_us
from storage.backup.schema import FileEntry, load, to_doc
from storage.backup.sets import being_written, refuse_newer_locked, writing_error
from storage.backup.stoppable import stoppable
from storage.files import FileStore
from storage.inflight import workers_for
from storage.install import Beside, BesideWork, Restore

from .archive_keys import refused_window
from .backup_drops import origin_of, prune_archived
from .backup_records import forget_gone, refuse_newer_gone, whole_namespace
from .jobs import JobContext
from .restore_hold import hold
from .state import Cairn
from .throttle import Throttle

log = logging.getLogger("cairn.restore")

T = TypeVar("T")


@dataclass
class RestorePlan:
    source: str  # the namespace named in the statement
    destination: str  # AS new_ns, or the source
    repo: Repository
    backup_id: str | None = None
    as_of: str | None = None
    replace: bool = False
    time: pitr.TimePlan | None = None  # restore to a time: a base, then archived changes
    origin: Origin | None = None  # this server's namespace of that name: its backups are taken


def parse_time(text: str) -> datetime:
    """RESTORE's `as_of`: an ISO-8601 time, one without a zone UTC (contract
    section 6), read as the backup chooser reads it (selection.parse_time)."""
    return selection.parse_time(text, "as_of")


def choose_manifest(plan: RestorePlan) -> Manifest:
    """The backup to restore: `backup_id`, else the newest of the namespace
    (taken at or before `as_of` when given); refused when a damaged backup may
    be that newest one (Repository.choose_backup)."""
    # A member of a set still being written (its lock in the target) is not
    # taken, nor an older backup in its stead.
    writing = being_written(plan.repo) if plan.backup_id is None else set()
    m = load(choose_own(plan.repo, plan.source, plan.backup_id, plan.as_of,
                        lambda h: whole(h) and not writing_error(h, writing), plan.origin))
    if writing:
        refuse_newer_locked(plan.repo.listing(plan.source), writing, m.snapshot_at,
                            plan.repo.uri, partial(_counts, plan))
    if m.scope is not None and m.scope.kind == "tables":  # named by backup_id
        raise InvalidArgument(
            f"backup '{m.backup_id}' holds only tables {', '.join(m.scope.tables)} of namespace "
            f"'{m.namespace}'; restore them with RESTORE TABLE")
    return m


def time_plan(cairn: Cairn, plan: RestorePlan) -> pitr.TimePlan | None:
    """A RESTORE `as_of` through archived changes (pitr.plan): only this
    server's namespace's windows, its own archive of it (the catalog's) among
    them; with `backup_id` too, that backup's, whoever wrote it. None: no
    archived changes of it, `as_of` takes the newest backup by then."""
    assert plan.as_of is not None
    own = cairn.catalog.get(Archive, plan.source)
    mine = own is not None and own.target == plan.repo.uri
    if own is not None and own.status == "stopped" and own.stopped_at:
        # stopped before the restore in effect then: of the history it replaced
        since = era_us(plan.origin, plan.as_of)
        mine = mine and not (since and parse_us(own.stopped_at) < since)
    known = (own.archive_id,) if own is not None and mine else ()
    shipped = own.shipped_lsn if own is not None and mine else 0
    return pitr.plan(plan.repo, plan.source, plan.as_of, parse_us(plan.as_of),
                     plan.origin, known, plan.backup_id, shipped)


def _counts(plan: RestorePlan, h: dict[str, Any]) -> bool:
    """Whether listed backup `h` is one a RESTORE without backup_id may take:
    of this server's namespace (its origin), taken by `as_of` when given."""
    if plan.origin is not None and not taken_as_own(plan.origin, h):
        return False
    taken = h.get("snapshot_at")
    return plan.as_of is None or isinstance(taken, str) and selection.parse_time(
        taken) <= parse_time(plan.as_of)


def whole(header: dict[str, Any]) -> bool:
    """A backup of a whole namespace (not of some of its tables): alone, or a
    member of a backup set."""
    scope = header.get("scope")
    return scope is None or scope.get("kind") != "tables"


def run_restore(cairn: Cairn, ctx: JobContext, plan: RestorePlan) -> dict[str, Any]:
    if plan.origin is not None:
        # Read now, not when the statement came: the backups this server
        # recorded, or is writing, since then (the job may have queued) are
        # its own, not a copied data directory's (Origin.written_here).
        plan.origin = origin_of(cairn, plan.source)

    def targeted(fn: Callable[[], T]) -> T:
        """`fn()`, which reads the target: on S3, given up when the job is killed."""
        if plan.repo.target.kind != "s3":
            return fn()
        return stoppable(fn, lambda: ctx.cancelled, f"job {ctx.job_id}")

    if plan.as_of is not None and plan.time is None:
        # Archived changes: exact to the commit (a base backup, then the
        # changes). Planned in the job, as the backup is chosen: a time
        # refused (before every base, past the end, a damaged archive) is a
        # failed job (until 2026-12-07 it left no row in system.jobs).
        plan.time = targeted(partial(time_plan, cairn, plan))
        if plan.time is not None:
            plan.backup_id, plan.as_of = plan.time.base_id, None
    try:
        m = targeted(partial(choose_manifest, plan))
    except BackupInvalid as exc:
        if plan.time is None:
            raise
        raise refused_window(plan.repo, plan.time, exc) from None
    except NotFound:
        # A backup of this server's another server dropped: no longer listed here.
        forget_gone(cairn, plan.repo, plan.source if plan.backup_id is None else None,
                    plan.backup_id)
        raise
    if plan.backup_id is None and plan.time is None:  # the newest, and no archive after it
        refuse_newer_gone(cairn, plan.repo, f"backup of namespace '{plan.source}'", m.backup_id,
                          m.snapshot_at, plan.as_of, whole_namespace(plan.source))
    ctx.set(backup_id=m.backup_id)
    check_not_archived(cairn, plan.destination)
    if cairn.catalog.get(Namespace, plan.destination) is not None and not plan.replace:
        raise AlreadyExists(
            f"Namespace '{plan.destination}' already exists; use WITH (replace = true) "
            "to replace it"
        )
    throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
    # A throttled restore moves one file at a time: a capped rate gains nothing
    # from several in flight, and each would copy a step before it is slowed.
    restore = Restore(m, plan.destination, replace=plan.replace,
                      guard=lambda: check_not_archived(cairn, plan.destination),
                      workers=1 if throttle.rate > 0 else workers_for(plan.repo.target.kind))
    if plan.time is not None:  # the archived changes, replayed beside the base's copy
        restore.beside = _replayer(plan, plan.time, m, ctx, cairn.catalog.last_seq())
    ctx.progress(files_total=restore.files_total, bytes_total=restore.bytes_total, files_done=0,
                 bytes_done=0, force=True)
    # Should the process die after the install, start-up can tell the job was whole.
    ctx.set(cleanup={"namespace": plan.destination,
                     "table_uids": sorted(restore.table_uids.values())})

    stored = {o.oid: o.size for o in m.objects}

    def fetch(f: FileEntry, dest: Path, on_bytes: Any) -> None:
        def counted(n: int) -> None:
            if ctx.cancelled:  # a read left to end alone (stoppable) counts nothing
                raise Cancelled(f"job {ctx.job_id} was cancelled")
            on_bytes(n)

        def read() -> None:
            plan.repo.read_object_to(f.oid, str(dest), f.size, on_bytes=counted,
                                     should_stop=lambda: ctx.cancelled, sha256=f.sha256,
                                     stored_size=stored.get(f.oid))

        if plan.repo.target.kind != "s3":
            return read()
        # A read an endpoint drips does not hold a killed job (stoppable.py).
        return stoppable(read, lambda: ctx.cancelled, f"job {ctx.job_id}")

    try:
        # No DROP BACKUP or keep_last pulls them away, nor the archived changes replayed.
        replayed = plan.time.archive_id if plan.time is not None else None
        with hold(plan.repo, [m], ctx, replayed,
                  partial(_pruned, cairn, ctx, plan) if replayed is not None else None):
            cairn.engine.restore(restore, fetch, ctx,
                                 throttle.spent if throttle.rate > 0 else None)
            ctx.land()  # installed: a full data directory no longer fails the job
    finally:
        with contextlib.suppress(OSError):  # an archive's temporary files (start-up sweeps them)
            plan.repo.close()
    m = restore.manifest  # after a replay: the tables as of the instant
    # The job counts what was restored, replayed changes too (it kept the
    # base's): the base's files the tables still hold and the files written
    # from replayed rows, as system.tables counts them afterwards. Its `rows`
    # are the answer's (jobs.py answered_rows).
    files, nbytes = m.totals.files + restore.files_added, m.totals.bytes + restore.bytes_added
    ctx.progress(files_total=files, files_done=files, bytes_total=nbytes, bytes_done=nbytes,
                 force=True)
    return {
        "job_id": ctx.job_id, "backup_id": m.backup_id, "namespace": plan.destination,
        "status": "completed", "tables": m.totals.tables, "rows": restore.live_rows,
        "row_versions": m.totals.rows + restore.row_versions_added,
        "files": files, "bytes": nbytes,
    }


def _pruned(cairn: Cairn, ctx: JobContext, plan: RestorePlan) -> None:
    """After a restore to a time whose base was dropped beside it: the
    segments the drop's prune left to it go now (holds.py)."""
    freed = prune_archived(cairn, ctx, plan.repo, plan.source)
    log.info("restore %s: %d bytes of archived changes of a dropped base freed",
             ctx.job_id, freed)


def check_not_archived(cairn: Cairn, namespace: str) -> None:
    """A namespace being archived is not restored over: its archived changes
    would no longer continue what it holds."""
    rec = cairn.catalog.get(Archive, namespace)
    if rec is not None and rec.status != "stopped":
        raise InvalidArgument(
            f"namespace '{namespace}' is being archived to '{rec.target}'; "
            "STOP ARCHIVING DATABASE first")


def _replayer(plan: RestorePlan, time: pitr.TimePlan, m: Manifest,
              ctx: JobContext, seq_now: int) -> BesideWork:
    """The work beside the base's copy (storage/install.py): the archived
    changes committed after the base up to the instant read, checked and
    replayed on the base manifest's tables, their rows written as Parquet."""

    def run(files: FileStore, uids: dict[str, str], check: Callable[[], None]) -> Beside:
        segments = pitr.changes(plan.repo, time, check)
        doc = to_doc(m)
        # created_at: the base's, or a replayed CREATE NAMESPACE's (dropped and made again)
        doc["namespace_record"] = record = dict(doc["namespace_record"])
        tables = replay.replay(doc["tables"], segments, f"archive of namespace '{plan.source}'",
                               seq_now, record)
        # A table the replay created (or dropped and created again) gets a new uid.
        uids = {name: uids[name] if t.base and name in uids else new_id("tbl")
                for name, t in tables.items()}
        # With the new tables' uids: should the process die after the install,
        # start-up can still tell the job was whole.
        ctx.set(cleanup={**ctx.job.cleanup, "namespace": plan.destination,
                         "table_uids": sorted(uids.values())})
        added: list[DataFile] = []
        try:
            for name, t in tables.items():
                check()
                added += replay.write_rows(files, plan.destination, uids[name], t)
        except BaseException:
            for f in added:
                with contextlib.suppress(OSError):
                    files.abs(f.path).unlink()
            raise
        # Live rows: the base's where every replayed row is a new key's first
        # version (counted from the files otherwise, install.py).
        base_live = {t.name: t.live_rows for t in m.tables}
        live = {}
        for name, t in tables.items():
            before = base_live.get(name) if t.base else 0
            if before is not None and t.first_versions_only():
                live[name] = before + t.rows_added
        return Beside(_manifest(doc, tables), uids, added, live,
                      sum(r.num_rows for t in tables.values() for _, _, r in t.batches))

    return run


def _manifest(doc: dict[str, Any], tables: dict[str, replay.Replayed]) -> Manifest:
    """The base manifest with the replayed tables (their live rows left out:
    the restore knows or counts them), and only the objects their files use
    (a table the replay dropped takes its objects with it)."""
    entries = [{k: v for k, v in t.entry.items() if k != "live_rows"} for t in tables.values()]
    files = [f for e in entries for f in e.get("files", [])]
    used = {f["oid"] for f in files}
    objects = [o for o in doc["objects"] if o["oid"] in used]
    totals = {k: v for k, v in doc["totals"].items() if k != "live_rows"}
    out = {**doc, "tables": entries, "objects": objects,
           "totals": {**totals, "tables": len(entries),
                      "rows": sum(int(e.get("rows", 0)) for e in entries),
                      "files": len(files), "bytes": sum(int(f["size"]) for f in files),
                      "objects": len(objects),
                      "object_bytes": sum(int(o["size"]) for o in objects)}}
    return load(out)
