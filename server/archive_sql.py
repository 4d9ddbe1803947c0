"""START / STOP ARCHIVING, SHOW ARCHIVES, SHOW RESTORE POINTS and VERIFY ARCHIVE."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from catalog import Archive, Job, Namespace
from catalog.errors import AlreadyExists, CairnError, InvalidArgument, NotFound, Unavailable
from catalog.ids import new_id
from sqlgrammar import ast
from storage import clock_floor
from storage.archive import damaged, pitr, store
from storage.archive.changes import MAX_LSN, now_us
from storage.archive.helper import HelperFailed
from storage.backup.origin import window_filter
from storage.system_tables import archives as archive_rows

from .archive_keys import describe
from .archive_verify import lost_rows, shipped_of, verify_work
from .archiving import Archiver, ArchiveService, service
from .backup_drops import origin_of
from .backups import check_options, job_row, redacted, result_row
from .dispatch import Routes
from .intervals import parse_interval
from .namespaces import check_namespace_name
from .repos import repository
from .restore_hold import held_here
from .result import Result
from .state import Cairn, Session

START_OPTIONS: dict[str, type] = {"interval": str, "compression": str, "encryption_passphrase": str,
                                   "detached": bool}
VERIFY_ARCHIVE_OPTIONS: dict[str, type] = {"encryption_passphrase": str, "detached": bool}

routes = Routes()
log = logging.getLogger("cairn.archive")
PAUSE_LOOK = 0.05  # seconds between STOP's looks at a base it waits for being paused

ARCHIVE_COLUMNS = [
    ("namespace", "TEXT"), ("target", "TEXT"), ("status", "TEXT"),
    ("archived_until", "TIMESTAMP"), ("lag_ms", "BIGINT"), ("segments", "BIGINT"),
    ("bytes", "BIGINT"), ("last_error", "TEXT"),
]
POINT_COLUMNS = [
    ("namespace", "TEXT"), ("start_time", "TIMESTAMP"), ("end_time", "TIMESTAMP"),
    ("base_backup_id", "TEXT"), ("base_backups", "BIGINT"), ("segments", "BIGINT"),
    ("archive_id", "TEXT"), ("error", "TEXT"),
    # Whose window: the server that wrote its base (the manifest's
    # namespace_record.server), and whether it is this server's namespace's
    # (a RESTORE as_of without backup_id uses only those).
    ("server", "TEXT"), ("own", "BOOLEAN"),
]


def _repo(cairn: Cairn, target: str, passphrase: str | None = None,
          compression: str = "zstd") -> Any:
    repo = repository(cairn, target, passphrase, compression)
    if repo.target.kind == "archive":
        raise InvalidArgument(
            f"backup target '{target}' is a single-file archive; archived changes need a "
            "directory or S3 target")
    return repo


@routes.handles(ast.StartArchiving, role="admin")
async def start_archiving(cairn: Cairn, session: Session, stmt: ast.StartArchiving) -> Result:
    opts = check_options("START ARCHIVING", stmt.options, START_OPTIONS)
    interval_ms = parse_interval(str(opts.get("interval", "1s")))
    compression = opts.get("compression", "zstd")
    if compression not in ("zstd", "none"):
        raise InvalidArgument("option 'compression' must be 'zstd' or 'none'")
    ns = stmt.namespace
    check_namespace_name(ns)
    if await cairn.run(cairn.catalog.get, Namespace, ns) is None:
        raise NotFound(f"Namespace '{ns}' does not exist")
    repo = await cairn.run_target(stmt.target, _repo, cairn, stmt.target,
                                  opts.get("encryption_passphrase"), compression)
    svc = service(cairn)
    existing = await cairn.run(cairn.catalog.get, Archive, ns)
    if existing is not None and existing.status != "stopped" and not unstarted(svc, existing):
        raise AlreadyExists(f"namespace '{ns}' is already being archived to '{existing.target}'")
    rec = Archive(namespace=ns, target=repo.uri, target_text=stmt.target,
                  archive_id=new_id("ar"), interval_ms=interval_ms, compression=compression,
                  secret=opts.get("encryption_passphrase"), started_by=session.user_id)
    await cairn.run(cairn.catalog.put, rec)
    await cairn.run(cairn.engine.changes.activate, ns, now_us())
    arch = Archiver(svc, ns, rec.archive_id)
    arch._repo = repo
    svc.archivers[ns] = arch

    async def begin(detached: Callable[[str], None] | None = None) -> Job:
        """The base backup, then the archiver's loop (the same archiver: one
        lock); a base that fails or is cancelled leaves no archive (nothing is
        being archived). A STOP meanwhile waits for the base, and ends the loop."""
        def on_job(job_id: str) -> None:
            for told in (detached, session.on_job):
                if told is not None:
                    told(job_id)

        async with arch.lock:
            try:
                job: Job = await arch.take_base(rec, on_job)
            except BaseException as exc:
                try:
                    await cairn.run(drop_failed, cairn, arch, exc)
                finally:
                    if svc.archivers.get(ns) is arch:
                        svc.archivers.pop(ns, None)
                    await svc.release_helper()  # a STOP meanwhile left it for this one
                raise
        svc.launch(arch)
        return job

    if opts.get("detached"):
        found: Job | None = await cairn.run(cairn.catalog.get, Job, await detach(begin))
        assert found is not None  # recorded before its id is told
        return job_row(found)
    job = await begin()
    row = {"namespace": ns, "target": repo.uri, "status": "running", "job_id": job.job_id}
    return result_row(row, [("namespace", "TEXT"), ("target", "TEXT"), ("status", "TEXT"),
                            ("job_id", "TEXT")],
                      f"Archiving namespace '{ns}' to '{repo.uri}' (base backup "
                      f"'{job.result['backup_id']}')")


def drop_failed(cairn: Cairn, arch: Archiver, error: BaseException) -> None:
    """After START ARCHIVING's base failed: its archive goes (only its own: a
    STOP and a new START may have come between). Should the data directory
    refuse that too (the base failed for it, likely), the archive reads
    `failed` with the reason, and START ARCHIVING may be run again
    (`unstarted`): it stayed `running` on its own, for good, archiving
    nothing, and START answered 409."""
    now = cairn.catalog.get(Archive, arch.namespace)
    if not arch.owns(now):
        return
    assert now is not None
    cairn.engine.changes.deactivate(arch.namespace)
    try:
        cairn.catalog.delete(Archive, arch.namespace)
    except CairnError as refused:
        why = error.message if isinstance(error, CairnError) else (
            "cancelled" if isinstance(error, asyncio.CancelledError) else repr(error))
        log.warning("archive of %s: its base failed and its record cannot be removed: %s",
                    arch.namespace, refused.message)
        now.status, now.last_error = "failed", f"its base backup failed: {why}"
        cairn.catalog.keep(now)  # in memory while the disk refuses


def unstarted(svc: ArchiveService, rec: Archive) -> bool:
    """Whether `rec` is what a START ARCHIVING whose base failed left (`drop_failed`):
    no base, and no loop of this server and no START's base to ship it."""
    return (rec.status == "failed" and rec.base_lsn is None
            and svc.archivers.get(rec.namespace) is None)


_detached: set[asyncio.Task[Any]] = set()  # held until done (the loop keeps weak ones)


async def detach(begin: Callable[[Callable[[str], None]], Coroutine[Any, Any, Any]]) -> str:
    """Run `begin(on_job)` in the background and return the id of the job it
    starts, once it has started one (its error if it fails before)."""
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_job(job_id: str) -> None:
        if not started.done():
            started.set_result(job_id)

    def ended(task: asyncio.Task[Any]) -> None:
        _detached.discard(task)
        error = None if task.cancelled() else task.exception()  # its job's row has it
        if not started.done():
            started.set_exception(error or Unavailable("the server is stopping"))

    # A context of its own: the request's (counted while it runs, throttle.py)
    # ends before the base it waits for does.
    task: asyncio.Task[Any] = asyncio.create_task(begin(on_job), context=contextvars.Context())
    _detached.add(task)
    task.add_done_callback(ended)
    return await started


@routes.handles(ast.StopArchiving, role="admin")
async def stop_archiving(cairn: Cairn, session: Session, stmt: ast.StopArchiving) -> Result:
    ns = stmt.namespace
    rec = await cairn.run(cairn.catalog.get, Archive, ns)
    if rec is None or rec.status == "stopped":
        raise NotFound(f"namespace '{ns}' is not being archived")
    svc = service(cairn)
    while True:
        # The namespace's one archiver (see Archiver): its lock waits for a
        # cycle, or for the base of a START ARCHIVING (detached) under way.
        arch = svc.archivers.get(ns) or Archiver(svc, ns)
        arch.wake.set()
        await locked(cairn, arch)
        try:
            if svc.archivers.get(ns, arch) is not arch:
                continue  # replaced while this waited (a STOP and a START between)
            rec = await cairn.run(cairn.catalog.get, Archive, ns)
            if not arch.owns(rec):
                raise NotFound(f"namespace '{ns}' is not being archived")
            arch.stopping = True
            error = await final_ship(cairn, arch)
            await cairn.run(finish, cairn, arch, error)
        finally:
            arch.lock.release()
        break
    task = arch.task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task])  # it ends writing nothing: `stopping`, and the record
    if svc.archivers.get(ns) is arch:
        svc.archivers.pop(ns, None)
    await svc.release_helper()
    rows = [r for r in await cairn.run(archive_rows, cairn.engine) if r["namespace"] == ns]
    return Result.of_rows(ARCHIVE_COLUMNS, rows,
                          message=f"Archiving of namespace '{ns}' stopped"
                          + (f"; {error}" if error else ""))


async def locked(cairn: Cairn, arch: Archiver) -> None:
    """STOP takes `arch.lock`, waiting for a cycle or a base backup (START
    ARCHIVING's, detached, or a new one the loop takes); INVALID_ARGUMENT at once
    while that base is paused. A paused job has no end of its own: the STOP
    waited as long as the pause lasted, for ever if no one resumed it."""
    acquire = asyncio.ensure_future(arch.lock.acquire())
    try:
        while not acquire.done():
            for job in cairn.jobs.live() if arch.base_id is not None else ():
                if (job.job_type, job.backup_id, job.status) == ("backup", arch.base_id,
                                                                 "paused"):
                    raise InvalidArgument(
                        f"the base backup of archiving namespace '{arch.namespace}' (job "
                        f"'{job.job_id}') is paused: RESUME JOB '{job.job_id}' (STOP ARCHIVING "
                        f"then waits for it to finish) or KILL JOB '{job.job_id}' first")
            await asyncio.wait([acquire], timeout=PAUSE_LOOK)
    except BaseException:
        if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
            arch.lock.release()
        else:
            acquire.cancel()  # a cancelled waiter never holds the lock
        raise


async def final_ship(cairn: Cairn, arch: Archiver) -> str | None:
    """STOP's last segment (empty if nothing changed): every change committed
    up to now. What it could not ship, as last_error says it (None: all)."""
    ns = arch.namespace
    mark = await cairn.run(cairn.engine.changes.deactivate, ns)
    for attempt in range(2):
        try:
            rec = await cairn.run(arch.record)
            if rec.base_lsn is not None:
                if not arch.resumed:
                    rec = await cairn.run(arch.resume, rec)
                while await cairn.run(arch.ship, rec, True, mark):
                    rec = await cairn.run(arch.record)
            return None
        except HelperFailed as exc:  # it died mid-body: the next try builds it without it
            if attempt:
                return f"stopped before every change was shipped: {exc.message}"
        except CairnError as exc:
            return f"stopped before every change was shipped: {exc.message}"
    return None


def finish(cairn: Cairn, arch: Archiver, error: str | None) -> None:
    """The record says stopped, and the change log keeps nothing shipped. A
    STOP that could not ship everything keeps what it did not (before, it
    trimmed it all the same); the next START ARCHIVING's base holds it."""
    ns = arch.namespace
    now = arch.record()
    now.status, now.last_error = "stopped", error
    now.stopped_at = clock_floor.stop_at(cairn.engine, ns, now)  # after the restore in effect
    upto = MAX_LSN if error is None or now.base_lsn is None else now.shipped_lsn
    batch = cairn.catalog.batch().put(now)
    cairn.engine.changes.trim(ns, upto, batch)
    batch.commit()
    cairn.engine.changes.shipped(ns, upto)


@routes.handles(ast.ShowArchives, role="admin")
async def show_archives(cairn: Cairn, session: Session, stmt: ast.ShowArchives) -> Result:
    rows = await cairn.run(archive_rows, cairn.engine)
    return Result.of_rows(ARCHIVE_COLUMNS, sorted(rows, key=lambda r: r["namespace"]))


@routes.handles(ast.ShowRestorePoints, role="admin")
async def show_restore_points(cairn: Cairn, session: Session,
                              stmt: ast.ShowRestorePoints) -> Result:
    def work() -> list[dict[str, Any]]:
        repo = _repo(cairn, stmt.target)
        repo.require_exists()
        shipped = shipped_of(cairn.catalog.get(Archive, stmt.namespace), repo.uri)  # first
        # archives a restore to a time of this server replays (restore_hold.held_here)
        held = held_here(cairn.jobs.live(), repo.uri)
        runs, problems = store.all_runs(repo, stmt.namespace)
        entries = repo.listing(stmt.namespace)
        bases, broken = damaged.bases_and_damaged(repo, stmt.namespace, entries)
        keep = window_filter(origin_of(cairn, stmt.namespace), entries)
        mine = {m["backup_id"] for m in entries if "error" not in m and (keep is None or keep(m))}
        found = [{
            "namespace": stmt.namespace, "start_time": store.iso(w.start_us),
            "end_time": store.iso(w.end_us), "base_backup_id": w.bases[0].backup_id,
            "base_backups": len(w.bases), "segments": len(w.run.segments),
            "archive_id": w.run.archive_id,
            # what RESTORE refuses the whole archive for (and VERIFY reports)
            "error": "; ".join(problems.get(w.run.archive_id, [])) or None,
            "server": w.bases[0].server,
            "own": any(b.backup_id in mine for b in w.bases),
        } for w in store.windows(runs, bases)]
        # A window whose base may be a backup that cannot be read: listed, with why.
        found += damaged.point_rows(repo, stmt.namespace, runs, broken)
        # Changes missing (a gap, as VERIFY ARCHIVE and RESTORE name it): listed, with it.
        found += pitr.gap_rows(runs, bases, stmt.namespace)
        # What this server shipped that no base or segment in the target holds (its catalog says).
        found += lost_rows(stmt.namespace, shipped, runs, bases, broken, held)
        return sorted(found, key=lambda r: (store.parse_us(r["start_time"]),
                                            store.parse_us(r["end_time"])))

    return Result.of_rows(POINT_COLUMNS, await cairn.run_target(stmt.target, work))


@routes.handles(ast.VerifyArchive, role="admin")
async def verify_archive(cairn: Cairn, session: Session, stmt: ast.VerifyArchive) -> Result:
    opts = check_options("VERIFY ARCHIVE", stmt.options, VERIFY_ARCHIVE_OPTIONS)
    repo = await cairn.run_target(stmt.target, _repo, cairn, stmt.target,
                                  opts.get("encryption_passphrase"))
    await cairn.run_target(stmt.target, repo.require_exists)
    rec = cairn.catalog.get(Archive, stmt.namespace)  # before the target is listed
    shipped = shipped_of(rec, repo.uri)
    job = await cairn.jobs.run("verify", session, verify_work(
        repo, stmt.namespace, cairn.catalog.last_seq, shipped,
        lambda: held_here(cairn.jobs.live(), repo.uri)),
                               namespace=stmt.namespace, target=repo.uri,
                               statement=redacted(stmt), detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    r = job.result
    return result_row(r, [("namespace", "TEXT"), ("is_valid", "BOOLEAN"),
                          ("segments_checked", "BIGINT"), ("bytes_checked", "BIGINT"),
                          ("changes", "BIGINT"), ("windows", "JSON"), ("errors", "JSON"),
                          ("not_checked", "JSON")],
                      f"Archive of namespace '{stmt.namespace}' is "
                      f"{'valid' if r['is_valid'] else 'INVALID'}"
                      + (f"; {describe(stmt.namespace, r['not_checked'])}"
                         if r.get("not_checked") else ""))
