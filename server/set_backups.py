"""BACKUP DATABASE a, b / BACKUP ALL and RESTORE ALL: several namespaces at one
instant.

One engine snapshot covers every namespace named (every namespace, for ALL);
storage/backup/sets.py stores it as a backup set, one manifest per namespace
(`<set_id>.<ns>`), each a complete backup of its namespace: RESTORE DATABASE a
takes its member like any backup of a, VERIFY/SHOW/DROP BACKUP and ATTACH
treat members one by one. RESTORE ALL restores every namespace of the newest
complete set (or of `backup_id`: the set's id or any member's) together, in
one catalog batch (storage/install_all.py): all of them or none."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

from catalog import Backup, Namespace
from catalog.errors import (
    AlreadyExists,
    BackupInvalid,
    CairnError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from catalog.ids import new_id
from sqlgrammar import ast
from storage.backup import Repository
from storage.backup.origin import Origin, whose
from storage.backup.restored import held_by, restored_then, wrote_since
from storage.backup.schema import FileEntry, Manifest, Scope, load
from storage.backup.selection import parse_time as when
from storage.backup.selection import unreadable
from storage.backup.sets import (
    being_written,
    is_whole,
    member_id,
    refuse_newer_locked,
    write_set,
)
from storage.install import Restore
from storage.registry import RESERVED_NAMESPACES

from .backup_drops import drop_unless_gone, origins, with_message
from .backup_own import taken
from .backup_records import refuse_newer_gone, set_member
from .backup_run import scope_text, undo_late
from .backup_writing import recorded, running_backups
from .backups import (
    BACKUP_OPTIONS,
    RESTORE_OPTIONS,
    check_backup_options,
    check_options,
    job_row,
    redacted,
)
from .dispatch import Routes
from .jobcalls import job_call
from .jobs import JobContext
from .namespaces import check_namespace_name
from .repos import repository
from .restore_hold import hold
from .restore_run import check_not_archived, parse_time
from .result import Result
from .state import Cairn, Session
from .throttle import Throttle

routes = Routes()

SET_RESULT = [
    ("job_id", "TEXT"), ("backup_id", "TEXT"), ("namespace", "TEXT"), ("target", "TEXT"),
    ("status", "TEXT"), ("tables", "BIGINT"), ("rows", "BIGINT"), ("files", "BIGINT"),
    ("bytes", "BIGINT"), ("bytes_written", "BIGINT"), ("row_versions", "BIGINT"),
]
RESTORE_ALL_RESULT = [
    ("job_id", "TEXT"), ("backup_id", "TEXT"), ("namespace", "TEXT"), ("status", "TEXT"),
    ("tables", "BIGINT"), ("rows", "BIGINT"), ("files", "BIGINT"), ("bytes", "BIGINT"),
    ("row_versions", "BIGINT"),
]


def _sums(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The set's totals, beside its per-namespace rows (for /metrics and the logs)."""
    keys = ("tables", "rows", "files", "bytes", "bytes_written", "row_versions")
    return {k: sum(r.get(k) or 0 for r in rows) for k in keys if any(k in r for r in rows)}


def _all_namespaces(cairn: Cairn) -> list[str]:
    return sorted(n.name for n in cairn.catalog.scan(Namespace)
                  if n.name not in RESERVED_NAMESPACES)


def _namespaces(cairn: Cairn, stmt: ast.BackupDatabases) -> list[str]:
    if stmt.all:
        names = _all_namespaces(cairn)
        if not names:
            raise InvalidArgument("BACKUP ALL: there is no namespace to back up")
        return names
    names = list(stmt.namespaces)
    if len(set(names)) != len(names):
        raise InvalidArgument("BACKUP DATABASE names a namespace twice")
    for name in names:
        check_namespace_name(name)
        if cairn.catalog.get(Namespace, name) is None:
            raise NotFound(f"Namespace '{name}' does not exist")
    return sorted(names)


def _no_archive(repo: Repository) -> None:
    if repo.target.kind == "archive":
        raise InvalidArgument(f"target '{repo.uri}' is a backup archive, which holds one "
                              "backup of one namespace; back up several namespaces to a "
                              "directory or object-storage target")


@routes.handles(ast.BackupDatabases, role="admin")
async def backup_databases(cairn: Cairn, session: Session, stmt: ast.BackupDatabases) -> Result:
    opts = check_options("BACKUP", stmt.options, BACKUP_OPTIONS)
    check_backup_options(opts)
    names = await cairn.run(_namespaces, cairn, stmt)
    kind = "all" if stmt.all else "databases"
    repo = await cairn.run_target(stmt.target, repository, cairn, stmt.target,
                                  opts.get("encryption_passphrase"),
                                  opts.get("compression", "zstd"))
    _no_archive(repo)

    def work(ctx: JobContext) -> dict[str, Any]:
        # BACKUP ALL: every namespace as the job starts.
        chosen = _all_namespaces(cairn) if stmt.all else names
        set_id = new_id("bk")
        ctx.set(backup_id=set_id, cleanup={
            "target": repo.uri, "backup_id": set_id,
            "members": [member_id(set_id, n) for n in chosen]})
        ctx.check_cancelled()
        throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
        with cairn.engine.snapshot({n: None for n in chosen}) as snap:
            ctx.fault("backup.snapshot_taken")
            taken(ctx, snap.snapshot_at, Scope(kind="all" if stmt.all else "databases",
                                               set_id=set_id, namespaces=sorted(chosen)))
            # In the server, and so ended by a KILL at once on object storage (jobcalls.py).
            members = job_call(
                ctx, repo.target.kind, write_set, repo, snap.namespaces, set_id, kind,
                snapshot_at=snap.snapshot_at, label=opts.get("label"), work=ctx,
                spent=throttle.spent if throttle.rate > 0 else None, here=True,
                late=lambda: undo_late(repo, set_id, [member_id(set_id, n) for n in chosen],
                                       False))
        ctx.land()  # every member's manifest landed: the set is whole (backup_run.py)
        rows, records = [], []
        ctx.fault("backup.before_record")
        for m in members:
            record = Backup(
                backup_id=m.backup_id, namespace=m.namespace, target=repo.uri,
                created_at=m.created_at, snapshot_at=m.snapshot_at, tables=m.totals.tables,
                rows=m.totals.live_rows, row_versions=m.totals.rows, files=m.totals.files,
                bytes=m.totals.bytes, bytes_written=m.totals.bytes_written, label=m.label,
                encrypted=m.encrypted, job_id=ctx.job_id, scope=scope_text(m.scope),
                **whose(m.namespace_record))
            cairn.catalog.keep(record)  # in memory while the data directory is full
            records.append(record)
            rows.append({
                "job_id": ctx.job_id, "backup_id": m.backup_id, "namespace": m.namespace,
                "target": repo.uri, "status": "completed", "tables": record.tables,
                "rows": record.rows, "files": record.files, "bytes": record.bytes,
                "bytes_written": record.bytes_written, "row_versions": record.row_versions})
        recorded(cairn, ctx, repo, records)
        result: dict[str, Any] = {"job_id": ctx.job_id, "backup_id": set_id,
                                  "status": "completed", "namespaces": rows, **_sums(rows)}
        if opts.get("keep_last") is not None:
            ctx.set(result=result)  # the set landed, however keep_last ends
            try:
                result["dropped"] = drop_older_sets(cairn, ctx, repo, kind, chosen,
                                                    opts["keep_last"], set_id)
            except CairnError as exc:
                why = ctx.past_return(exc)  # a KILL stopped keep_last only: `failed`
                raise with_message(why, f"backup set '{set_id}' is complete, but keep_last "
                                        f"could not drop older ones: {why.message}") from exc
        return result

    job = await cairn.jobs.run("backup", session, work, target=repo.uri,
                               statement=redacted(stmt), detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    return Result.of_rows(SET_RESULT, job.result["namespaces"],
                          message=f"Backup set '{job.result['backup_id']}' of "
                                  f"{len(job.result['namespaces'])} namespaces completed")


# --- which set ------------------------------------------------------------------


def _sets(headers: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Readable members of backup sets, by set id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for h in headers:
        scope = h.get("scope") or {}
        if scope.get("set_id"):
            out.setdefault(scope["set_id"], []).append(h)
    return out


def drop_older_sets(cairn: Cairn, ctx: JobContext, repo: Repository, kind: str,
                    namespaces: list[str], keep: int, set_id: str) -> list[str]:
    """keep_last for a set (`set_id`, just written): the whole sets of the same
    kind and namespaces older than it, beyond the newest `keep` counting it,
    go, every member of each. A set whose lock is in the target (still being
    written, member by member), a set missing a member, a set newer than
    `set_id` and another server's set (its namespaces are other databases of
    the same names) are neither counted nor dropped."""
    listed = _sets(repo.list_manifests())  # before the locks: a set done after is whole
    writing = being_written(repo) | set(running_backups(cairn, ctx.job_id))
    if set_id not in listed:
        return []
    ours = (_rank(listed[set_id]), set_id)
    origin_of = origins(cairn)
    same = [(_rank(members), sid, members)
            for sid, members in listed.items()
            if members[0]["scope"]["kind"] == kind
            and members[0]["scope"]["namespaces"] == sorted(namespaces)
            and sid not in writing and is_whole(members)
            and all(origin_of(h["namespace"]).owns(h) for h in members)]
    same = [s for s in same if s[:2] <= ours]
    same.sort(key=lambda s: s[:2], reverse=True)
    dropped = []
    for _, sid, members in reversed(same[keep:]):  # oldest first, as drop_beyond
        for h in members:
            drop_unless_gone(cairn, ctx, repo, h["backup_id"])
        dropped.append(sid)
    return dropped[::-1]


def _rank(members: list[dict[str, Any]]) -> tuple[datetime, datetime]:
    """Sort key of a set for "newest": its instant (snapshot_at, which one
    server's snapshots keep in the order taken, storage/clock_floor.py), then
    when it landed. By created_at alone, the wall clock stepped back between
    two sets made the older one the newest."""
    return (max(when(h["snapshot_at"]) for h in members),
            max(when(h["created_at"]) for h in members))


def choose_set(repo: Repository, backup_id: str | None, as_of: str | None,
               owns: Callable[[dict[str, Any]], bool] = lambda h: True,
               wrote: Callable[[dict[str, Any]], bool] = lambda h: True,
               held: Callable[[dict[str, Any]], bool] = lambda h: True) -> list[str]:
    """The member ids of the set RESTORE ALL takes: the one `backup_id` names
    (its set id or a member's id), else the newest complete set (taken at or
    before `as_of`) of this server's (every member `owns`), or of any server
    when none is (a fresh server restoring another's). With `as_of`, of those
    the newest this server wrote (every member `wrote`) when there is one, else
    the newest whose every member of a namespace this server has may hold its
    state then (`held`: restored.held_by, the set it was restored from): a
    server restored from goes on with its own databases, its newer sets are
    not this server's state at the time (origin.choose_own); NOT_FOUND when
    none is. A set missing a
    member, or a damaged manifest that may be the newest backup, is
    BACKUP_INVALID: never an older set instead."""
    entries = repo.listing(None)
    sets = _sets(e for e in entries if "error" not in e)
    writing = being_written(repo)
    if backup_id is not None:
        set_id = next((s for s, ms in sets.items()
                       if backup_id == s or any(h["backup_id"] == backup_id for h in ms)), None)
        if set_id is None:
            raise NotFound(f"no backup set '{backup_id}' in target '{repo.uri}' (RESTORE ALL "
                           "takes a set made by BACKUP ALL or BACKUP DATABASE a, b)")
        if set_id in writing:
            raise BackupInvalid(f"backup set '{set_id}' in target '{repo.uri}' is being "
                                "written (its lock is in the target); nothing was restored")
    else:
        limit = parse_time(as_of) if as_of is not None else None
        # A set whose lock is in the target is still landing (or its writer died).
        fit = [(_rank(ms), s) for s, ms in sets.items()
               if s not in writing
               and (limit is None or max(when(h["snapshot_at"]) for h in ms) <= limit)]
        if not fit:
            raise NotFound(f"no backup set in target '{repo.uri}'"
                           + (f" taken at or before {as_of}" if as_of else ""))
        # This server's sets first (every member `owns`): another server's
        # namespaces of the same names are other databases.
        mine = [f for f in fit if all(owns(h) for h in sets[f[1]])]
        written = [f for f in mine if as_of is not None and all(wrote(h) for h in sets[f[1]])]
        if as_of is not None and not written:
            # The state then of the namespaces this server has: a set whose
            # member of one of them is not (`held`) is another database's, or
            # the server restored from's after the one restored (its rows
            # over this server's, until 2026-12-07; by way of a set holding a
            # namespace this server has not too).
            fit = [f for f in fit if all(held(h) for h in sets[f[1]])]
            mine = [f for f in mine if f in fit]
            if not fit:
                raise NotFound(
                    f"no backup set in target '{repo.uri}' taken at or before {as_of} holds "
                    "the state then of this server's namespaces: another server's sets of "
                    "those names are other databases, and the server they were restored "
                    "from's sets taken after the one restored hold rows they never had (or "
                    "the one restored is gone); nothing was restored. Name a set with "
                    "backup_id = '…'")
        (_, newest), set_id = max(written or mine or fit)
        for bad in (e for e in entries if "error" in e):
            created, taken = bad.get("created_at"), bad.get("snapshot_at")
            if limit is not None and isinstance(taken, str) and when(taken) > limit:
                continue  # its own checksum vouches it was taken after as_of
            if not isinstance(created, str) or when(created) >= newest:
                raise unreadable(bad)(
                    f"backup '{bad['backup_id']}' in target '{repo.uri}' cannot be read and may "
                    f"be the newest; nothing was restored: {bad['error']}")
    members = sets[set_id]
    if backup_id is None and writing:
        refuse_newer_locked(entries, writing, members[0]["snapshot_at"], repo.uri,
                            lambda h: owns(h) and (limit is None
                                                   or when(h["snapshot_at"]) <= limit))
    want = members[0]["scope"]["namespaces"]
    # One set, one instant: members re-sealed to disagree made the result
    # hang on which one was listed first.
    if any(h["scope"]["namespaces"] != want or h["snapshot_at"] != members[0]["snapshot_at"]
           for h in members):
        raise BackupInvalid(f"backup set '{set_id}' in target '{repo.uri}' is inconsistent: "
                            "its members do not name the same namespaces and instant")
    have = sorted(h["namespace"] for h in members)
    if have != want:
        raise BackupInvalid(f"backup set '{set_id}' in target '{repo.uri}' is incomplete: it "
                            f"names namespaces {', '.join(want)} but holds {', '.join(have)}")
    return [member_id(set_id, n) for n in want]


def _read_set(repo: Repository, set_id: str, ids: list[str]) -> list[Manifest]:
    """The manifests of set `set_id`'s members `ids`, as chosen. A member
    dropped since the choice (another server's DROP BACKUP or keep_last)
    was NOT_FOUND naming that member, which the user never named: now the
    set is incomplete (BACKUP_INVALID, as a RESTORE ALL started after the
    drop says), or NOT_FOUND naming the set when every member went."""
    out, gone = [], []
    for i in ids:
        try:
            out.append(load(repo.read_manifest(i)))
        except NotFound:
            gone.append(i.rsplit(".", 1)[1])
    if len(gone) == len(ids):
        raise NotFound(f"backup set '{set_id}' was dropped from target '{repo.uri}' as the "
                       "restore started; nothing was restored")
    if gone:
        raise BackupInvalid(
            f"backup set '{set_id}' in target '{repo.uri}' is incomplete: its member of "
            f"namespace {', '.join(gone)} was dropped as the restore started; nothing was "
            "restored")
    return out


def _held(origin_of: Callable[[str], Origin], as_of: str | None, h: dict[str, Any]) -> bool:
    """Whether set member `h` may hold its namespace's state at `as_of` on this
    server: a namespace it has not (restored new), or one whose backup it is
    (its lineage's, `Origin.owns`) taken after its last restore, or the one it
    was restored from then (restored.held_by, restored.restored_then)."""
    origin = origin_of(h["namespace"])
    return origin.created_at is None or as_of is None or origin.owns(h, lineage=True) and (
        wrote_since(origin, h) or held_by(origin, as_of, h)) or restored_then(origin, as_of, h)


def _guard(cairn: Cairn, namespace: str) -> Callable[[], None]:
    return lambda: check_not_archived(cairn, namespace)


@routes.handles(ast.RestoreAll, role="admin")
async def restore_all(cairn: Cairn, session: Session, stmt: ast.RestoreAll) -> Result:
    opts = check_options("RESTORE ALL", stmt.options, RESTORE_OPTIONS)
    if "backup_id" in opts and "as_of" in opts:
        raise InvalidArgument("give backup_id or as_of, not both")
    if "as_of" in opts:
        parse_time(opts["as_of"])
    replace = bool(opts.get("replace"))
    repo = await cairn.run(repository, cairn, stmt.target, opts.get("encryption_passphrase"))
    await cairn.run(repo.require_exists)

    def check(namespaces: list[str]) -> None:
        for ns in namespaces:
            check_not_archived(cairn, ns)
            if cairn.catalog.get(Namespace, ns) is not None and not replace:
                raise AlreadyExists(f"Namespace '{ns}' already exists; use WITH (replace = "
                                    "true) to replace it")

    running = running_backups(cairn)  # read before the target is listed
    origin_of = await cairn.run(origins, cairn)
    refused: CairnError | None = None
    try:
        ids = await cairn.run(choose_set, repo, opts.get("backup_id"), opts.get("as_of"),
                              lambda h: origin_of(h["namespace"]).owns(h, lineage=True),
                              lambda h: wrote_since(origin_of(h["namespace"]), h),
                              partial(_held, origin_of, opts.get("as_of")))
        set_id = ids[0].rsplit(".", 1)[0]
        if opts.get("backup_id") is None and set_id in running:  # as RESTORE DATABASE's
            raise Unavailable(
                f"the newest backup set in target '{repo.uri}' ('{set_id}') is still being "
                f"written by job '{running[set_id]}' (its manifests are in the target, its "
                "job has not ended); nothing was restored. Retry once that job has ended, or "
                "name a set with backup_id = '…'")
    except CairnError as exc:
        # No set to take (damaged, missing, being written): a failed restore
        # job, as RESTORE DATABASE's choice in its job is (it left no job).
        refused = exc
    else:
        await cairn.run(check, [i.rsplit(".", 1)[1] for i in ids])

    def work(ctx: JobContext) -> dict[str, Any]:
        if refused is not None:
            raise refused
        set_id = ids[0].rsplit(".", 1)[0]
        manifests = _read_set(repo, set_id, ids)
        if opts.get("backup_id") is None:  # not an older set in a newer one's stead
            refuse_newer_gone(cairn, repo, "member of a backup set", set_id,
                              manifests[0].snapshot_at, opts.get("as_of"), set_member)
        ctx.set(backup_id=set_id)
        check([m.namespace for m in manifests])
        restores = [Restore(m, m.namespace, replace=replace, guard=_guard(cairn, m.namespace))
                    for m in manifests]
        ctx.progress(files_total=sum(r.files_total for r in restores),
                     bytes_total=sum(r.bytes_total for r in restores), files_done=0,
                     bytes_done=0, force=True)
        ctx.set(cleanup={"namespace": ", ".join(m.namespace for m in manifests),
                         "table_uids": sorted(u for r in restores for u in r.table_uids.values())})
        throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)

        stored = {o.oid: o.size for m in manifests for o in m.objects}

        def fetch(f: FileEntry, path: Any, on_bytes: Any) -> None:
            repo.read_object_to(f.oid, str(path), f.size, on_bytes=on_bytes,
                                should_stop=lambda: ctx.cancelled, sha256=f.sha256,
                                stored_size=stored.get(f.oid))

        try:
            with hold(repo, manifests, ctx):  # no DROP BACKUP or keep_last pulls them away
                cairn.engine.restore_all(restores, fetch, ctx, throttle.spent)
                ctx.land()  # installed: a full data directory no longer fails the job
        except NotFound:
            if not ctx.landed and not all(repo.has_manifest(i) for i in ids):
                _read_set(repo, set_id, ids)  # the set's loss, named as the set's
            raise
        rows = [{"job_id": ctx.job_id, "backup_id": m.backup_id, "namespace": m.namespace,
                 "status": "completed", "tables": m.totals.tables, "rows": r.live_rows,
                 "files": m.totals.files, "bytes": m.totals.bytes, "row_versions": m.totals.rows}
                for m, r in zip(manifests, restores, strict=True)]
        return {"job_id": ctx.job_id, "backup_id": set_id, "status": "completed",
                "namespaces": rows, **_sums(rows)}

    job = await cairn.jobs.run("restore", session, work, target=repo.uri,
                               statement=redacted(stmt), detached=bool(opts.get("detached")))
    if opts.get("detached"):
        return job_row(job)
    return Result.of_rows(RESTORE_ALL_RESULT, job.result["namespaces"],
                          message=f"{len(job.result['namespaces'])} namespaces restored from "
                                  f"backup set '{job.result['backup_id']}'")
