"""RESTORE DATABASE: a backup becomes a namespace, all at once or not at all.

Every object is copied to its final place under `files/<new table uid>/` while
its sha256 is checked; nothing references those files until one catalog batch
registers the namespace, its tables, schema versions and files together (and,
with `replace`, removes the old namespace's records in the same batch). A
failure or a cancellation before that batch deletes the copies; a crash leaves
unreferenced files that the engine's start-up sweep removes. Restored tables get
new uids, so they never mix with what they replace."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from catalog import Archive, DataFile, Meta, Namespace, Table, TableSchema
from catalog.errors import AlreadyExists, BackupInvalid, InvalidArgument
from catalog.ids import new_id
from storage.archive import pitr, replay
from storage.backup import Repository
from storage.buffer import family_name
from storage.engine import APPEND_ONLY

from . import faults
from .jobs import JobContext
from .state import Cairn
from .throttle import Throttle

log = logging.getLogger("cairn.restore")

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


@dataclass
class RestorePlan:
    source: str  # the namespace named in the statement
    destination: str  # AS new_ns, or the source
    repo: Repository
    backup_id: str | None = None
    as_of: str | None = None
    replace: bool = False
    time: pitr.TimePlan | None = None  # restore to a time: a base, then archived changes


def parse_time(text: str) -> datetime:
    """An ISO-8601 time; one without a zone is UTC (contract section 6)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"as_of '{text}' is not an ISO-8601 timestamp like '2026-11-20T00:00:00Z'"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def choose_manifest(plan: RestorePlan) -> dict[str, Any]:
    """The backup to restore: `backup_id`, else the newest of the namespace
    (taken at or before `as_of` when given); refused when a damaged backup may
    be that newest one (Repository.choose_backup)."""
    return plan.repo.choose_backup(plan.source, plan.backup_id, plan.as_of)


def run_restore(cairn: Cairn, ctx: JobContext, plan: RestorePlan) -> dict[str, Any]:
    manifest = choose_manifest(plan)
    replayed: dict[str, replay.Replayed] = {}
    if plan.time is not None:
        check_tables(manifest)
        manifest, replayed = _replay(plan, plan.time, manifest, ctx)
    check_tables(manifest)
    ctx.set(backup_id=manifest["backup_id"])
    _check_destination(cairn, plan)
    files = [(t, f) for t in manifest["tables"] for f in t.get("files", [])]
    total = sum(f["size"] for _, f in files)
    ctx.progress(files_total=len(files), bytes_total=total, files_done=0, bytes_done=0,
                 rows=manifest["totals"].get("rows", 0), force=True)
    uids = {t["name"]: new_id("tbl") for t in manifest["tables"]}
    # Should the process die after the install, start-up can tell the job was whole.
    ctx.set(cleanup={"namespace": plan.destination, "table_uids": sorted(uids.values())})
    written: list[Path] = []
    try:
        records = _copy_files(cairn, ctx, plan, manifest, uids, written)
        for name, table in replayed.items():
            ctx.check_cancelled()
            new = replay.write_rows(cairn.engine.files, plan.destination, uids[name], table)
            written += [cairn.data_dir / f.path for f in new]
            records += new
            manifest["max_seq"] = max([int(manifest.get("max_seq", 0)), *(f.max_seq for f in new)])
        faults.hit("restore.before_install", job_id=ctx.job_id)
        ctx.check_cancelled()
        _install(cairn, plan, manifest, uids, records)
        faults.hit("restore.after_install", job_id=ctx.job_id)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for uid in uids.values():
            with contextlib.suppress(OSError):
                (cairn.data_dir / "files" / uid).rmdir()
        plan.repo.close()  # an archive's temporary files
        raise
    plan.repo.close()
    totals = manifest["totals"]
    return {
        "job_id": ctx.job_id,
        "backup_id": manifest["backup_id"],
        "namespace": plan.destination,
        "status": "completed",
        "tables": totals["tables"],
        "rows": totals["rows"],
        "files": totals["files"],
        "bytes": totals["bytes"],
    }


def check_not_archived(cairn: Cairn, namespace: str) -> None:
    """A namespace being archived is not restored over: its archived changes
    would no longer continue what it holds."""
    rec = cairn.catalog.get(Archive, namespace)
    if rec is not None and rec.status != "stopped":
        raise InvalidArgument(
            f"namespace '{namespace}' is being archived to '{rec.target}'; "
            "STOP ARCHIVING DATABASE first")


def _replay(plan: RestorePlan, time: pitr.TimePlan, manifest: dict[str, Any],
            ctx: JobContext) -> tuple[dict[str, Any], dict[str, replay.Replayed]]:
    """The base manifest as of `time`: its tables after the archived changes
    committed after the base, up to the instant."""
    changes = pitr.changes(plan.repo, time, ctx.check_cancelled)
    tables = replay.replay(manifest["tables"], changes, f"archive of namespace '{plan.source}'")
    entries = [t.entry for t in tables.values()]
    files = [f for e in entries for f in e.get("files", [])]
    rows = sum(int(e.get("rows", 0)) for e in entries) + sum(
        r.num_rows for t in tables.values() for _, _, r in t.batches)
    out = {**manifest, "tables": entries,
           "totals": {**manifest["totals"], "tables": len(entries), "rows": rows,
                      "files": len(files), "bytes": sum(int(f["size"]) for f in files)}}
    return out, {n: t for n, t in tables.items() if t.batches}


def _check_destination(cairn: Cairn, plan: RestorePlan) -> None:
    check_not_archived(cairn, plan.destination)
    if cairn.catalog.get(Namespace, plan.destination) is not None and not plan.replace:
        raise AlreadyExists(
            f"Namespace '{plan.destination}' already exists; use WITH (replace = true) "
            "to replace it"
        )


def _copy_files(
    cairn: Cairn,
    ctx: JobContext,
    plan: RestorePlan,
    manifest: dict[str, Any],
    uids: dict[str, str],
    written: list[Path],
) -> list[DataFile]:
    """Copy and check every object into place; the DataFile records to register."""
    records = []
    throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
    done_bytes = 0
    done_files = 0
    for table in manifest["tables"]:
        uid = uids[table["name"]]
        for f in table.get("files", []):
            faults.hit("restore.before_object", job_id=ctx.job_id, index=done_files)
            ctx.check_cancelled()
            file_id = new_id("f")
            rel = f"files/{uid}/{file_id}.parquet"
            dest = cairn.data_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            written.append(dest)
            base = done_bytes

            def on_bytes(n: int) -> None:
                nonlocal base
                base += n
                ctx.progress(bytes_done=base)
                faults.hit("restore.mid_object", job_id=ctx.job_id, bytes=n)
                throttle.spent(n)

            plan.repo.read_object_to(f["oid"], str(dest), f["size"], on_bytes=on_bytes,
                                     should_stop=lambda: ctx.cancelled, sha256=f.get("sha256"))
            done_bytes += f["size"]
            done_files += 1
            ctx.progress(files_done=done_files, bytes_done=done_bytes)
            records.append(DataFile(
                table_uid=uid, file_id=file_id, path=rel, rows=int(f.get("rows", 0)),
                bytes=int(f["size"]), sha256=f.get("sha256") or f["oid"],
                schema_version=int(f["schema_version"]),
                user_id=f.get("user_id"), min_seq=int(f.get("min_seq", 0)),
                max_seq=int(f.get("max_seq", 0)),
                key_range=dict(f.get("key_range") or {}),
            ))
    _fsync_files(written)
    _fsync_dirs({p.parent for p in written})
    return records


def _fsync_files(paths: list[Path]) -> None:
    """Restored bytes reach the disk before the catalog references them, as a
    flush's do: after a power loss no registered file may be a hole."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dirs(dirs: set[Path]) -> None:
    for d in dirs:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _install(
    cairn: Cairn,
    plan: RestorePlan,
    manifest: dict[str, Any],
    uids: dict[str, str],
    files: list[DataFile],
) -> None:
    """Make the restored namespace visible in one catalog batch."""
    catalog, engine = cairn.catalog, cairn.engine
    dest = plan.destination
    catalog.ensure_seq_above(int(manifest.get("max_seq", 0)))
    ns_rec = manifest.get("namespace_record") or {}
    with cairn.namespace_lock:
        check_not_archived(cairn, dest)
        old_exists = catalog.get(Namespace, dest) is not None
        if old_exists and not plan.replace:
            raise AlreadyExists(f"Namespace '{dest}' already exists")
        old_states = engine.tables_of(dest) if old_exists else []
        with contextlib.ExitStack() as held:
            for st in old_states:  # writers to the old tables wait for the swap
                held.enter_context(st.flush_lock)
                held.enter_context(st.write_lock)
            batch = catalog.batch()
            old_paths: list[str] = []
            for st in old_states:
                uid = st.uid
                batch.delete(Table, st.table.key())
                for s in catalog.scan(TableSchema, uid + "\x00"):
                    batch.delete(TableSchema, s.key())
                for f in catalog.scan(DataFile, uid + "\x00"):
                    batch.delete(DataFile, f.key())
                    old_paths.append(f.path)
                batch.delete(Meta, APPEND_ONLY + uid)
            batch.put(Namespace(dest, options=ns_rec.get("options") or {}))
            for t in manifest["tables"]:
                uid = uids[t["name"]]
                catalog.family(family_name(uid))
                batch.put(Table(
                    namespace=dest, name=t["name"], uid=uid, table_type=t["table_type"],
                    schema_version=int(t["schema_version"]), primary_key=list(t["primary_key"]),
                    options=dict(t.get("options") or {}), created_at=t["created_at"],
                ))
                for s in t["schemas"]:
                    batch.put(TableSchema(uid, int(s["version"]), dest, t["name"],
                                          columns=s["columns"], created_at=s["created_at"]))
            for f in files:
                batch.put(f)
            batch.commit()
            for st in old_states:
                engine.forget(st.uid)
        for st in old_states:
            catalog.drop_family(family_name(st.uid))
        engine.retire_files(old_paths)
    log.info("restored backup %s as namespace %s (%d tables, %d files)",
             manifest["backup_id"], dest, len(manifest["tables"]), len(files))


def check_tables(manifest: dict[str, Any]) -> None:
    """A manifest read from a target is input: its table entries must be whole
    (distinct valid names, the current schema version present) before anything
    is copied."""
    seen: set[str] = set()
    for t in manifest["tables"]:
        name = t.get("name")
        try:
            ok = (
                isinstance(name, str) and NAME.match(name) is not None and name not in seen
                and t["table_type"] in ("shared", "user", "stream")
                and int(t["schema_version"]) in {int(s["version"]) for s in t["schemas"]}
                and isinstance(t["primary_key"], list)
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise BackupInvalid(
                f"backup '{manifest['backup_id']}' has a damaged entry for table {name!r}"
            )
        seen.add(name)
