"""BACKUP DATABASE: one namespace, as of one instant, into a repository.

The engine's snapshot pins the namespace's immutable Parquet files and copies
the references to its buffered rows while holding the table locks for a few
milliseconds; everything after that runs without blocking writers. Parquet
files whose sha256 the catalog already knows are deduplicated with one stat;
buffered rows are exported to Parquet files first. The manifest is written
last, so the backup exists exactly when it is complete. On any failure or
cancellation the backup's lock is abandoned, which removes every object only
this run wrote."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog import Backup, Namespace, utcnow
from catalog.errors import NotFound
from storage.backup import Repository
from storage.archive.store import iso
from storage.backup.transfer import hash_file
from storage.snapshot import NamespaceSnapshot, TableSnapshot

from . import faults
from .jobs import JobContext
from .state import Cairn
from .throttle import Throttle

log = logging.getLogger("cairn.backup")

SEQ = "_seq"
USER = "_user"


@dataclass
class BackupPlan:
    namespace: str
    repo: Repository
    backup_id: str
    label: str | None = None
    compression: str = "zstd"
    cut: tuple[int, int] | None = None  # set by run_backup: the snapshot's (lsn, time)


@dataclass
class _Item:
    """One file to store: a pinned Parquet file or an exported buffer."""

    path: Path
    size: int
    sha256: str | None
    entry: dict[str, Any]
    table: dict[str, Any]
    temporary: bool = False


@dataclass
class _Tally:
    bytes_done: int = 0
    files_done: int = 0
    bytes_written: int = 0
    items: list[_Item] = field(default_factory=list)


def run_backup(cairn: Cairn, ctx: JobContext, plan: BackupPlan) -> dict[str, Any]:
    """The job's work: snapshot, store objects, write the manifest, record it."""
    engine = cairn.engine
    ns = cairn.catalog.get(Namespace, plan.namespace)
    if ns is None:
        raise NotFound(f"Namespace '{plan.namespace}' does not exist")
    ctx.set(backup_id=plan.backup_id, cleanup={"target": plan.repo.uri, "backup_id": plan.backup_id})
    ctx.check_cancelled()
    snap = engine.snapshot_namespace(plan.namespace)
    # The snapshot's cut instant: archived changes continue a base exactly there.
    snapshot_at = iso(snap.cut_us) if snap.cut_us else utcnow()
    plan.cut = (snap.cut_lsn, snap.cut_us)
    faults.hit("backup.snapshot_taken", job_id=ctx.job_id)
    staging = cairn.data_dir / "tmp" / f"backup-{plan.backup_id}"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        tables, tally = _collect(engine, snap, staging)
        total_bytes = sum(i.size for i in tally.items)
        ctx.progress(files_total=len(tally.items), bytes_total=total_bytes, files_done=0,
                     bytes_done=0, rows=sum(t["rows"] for t in tables), force=True)
        throttle = Throttle(cairn.config.backup.throttle_bytes_per_second, lambda: ctx.cancelled)
        with plan.repo.lock(plan.backup_id, should_stop=lambda: ctx.cancelled) as lock:
            # Record every known oid in one lock write before looking any up.
            lock.add([i.sha256 for i in tally.items if i.sha256])
            for index, item in enumerate(tally.items):
                faults.hit("backup.before_object", job_id=ctx.job_id, index=index)
                ctx.check_cancelled()
                _store(plan.repo, ctx, item, tally, lock, throttle)
            faults.hit("backup.before_manifest", job_id=ctx.job_id)
            ctx.check_cancelled()
            manifest = plan.repo.write_manifest(
                {
                    "backup_id": plan.backup_id,
                    "namespace": plan.namespace,
                    "created_at": utcnow(),
                    "snapshot_at": snapshot_at,
                    "label": plan.label,
                    "encrypted": plan.repo.encrypted,
                    "namespace_record": {"created_at": ns.created_at, "options": ns.options},
                    "max_seq": max((t["max_seq"] for t in tables), default=0),
                    "tables": tables,
                    "totals": {"bytes_written": tally.bytes_written},
                }
            )
            faults.hit("backup.after_manifest", job_id=ctx.job_id)
    finally:
        engine.release_snapshot(snap)
        shutil.rmtree(staging, ignore_errors=True)
    totals = manifest["totals"]
    record = Backup(
        backup_id=plan.backup_id,
        namespace=plan.namespace,
        target=plan.repo.uri,
        created_at=manifest["created_at"],
        snapshot_at=snapshot_at,
        tables=totals["tables"],
        rows=totals["rows"],
        files=totals["files"],
        bytes=totals["bytes"],
        bytes_written=tally.bytes_written,
        label=plan.label,
        encrypted=bool(manifest["encrypted"]),
        job_id=ctx.job_id,
    )
    cairn.catalog.put(record)
    ctx.progress(files_done=tally.files_done, bytes_done=tally.bytes_done, force=True)
    return {
        "job_id": ctx.job_id,
        "backup_id": plan.backup_id,
        "namespace": plan.namespace,
        "target": plan.repo.uri,
        "status": "completed",
        "tables": record.tables,
        "rows": record.rows,
        "files": record.files,
        "bytes": record.bytes,
        "bytes_written": record.bytes_written,
    }


def _collect(engine: Any, snap: NamespaceSnapshot, staging: Path) -> tuple[list[dict], _Tally]:
    """The manifest's table entries and the files to store, buffers exported."""
    tally = _Tally()
    tables = []
    for ts in snap.tables:
        t = ts.table
        entry: dict[str, Any] = {
            "name": t.name,
            "table_type": t.table_type,
            "schema_version": t.schema_version,
            "primary_key": list(t.primary_key),
            "options": dict(t.options),
            "created_at": t.created_at,
            "schemas": [
                {"version": s.version, "columns": s.columns, "created_at": s.created_at}
                for s in sorted(ts.schemas, key=lambda s: s.version)
            ],
            "files": [],
            "rows": 0,
            "max_seq": 0,
        }
        for f in ts.files:
            file_entry = {
                "oid": f.sha256, "size": f.bytes, "rows": f.rows,
                "schema_version": f.schema_version, "user_id": f.user_id,
                "min_seq": f.min_seq, "max_seq": f.max_seq, "source": "parquet",
                "key_range": dict(f.key_range),
            }
            tally.items.append(_Item(engine.files.abs(f.path), f.bytes, f.sha256, file_entry, entry))
        for item in _export_buffer(engine, ts, staging):
            item.table = entry
            tally.items.append(item)
        tables.append(entry)
    for item in tally.items:
        item.table["files"].append(item.entry)
        item.table["rows"] += item.entry["rows"]
        item.table["max_seq"] = max(item.table["max_seq"], item.entry["max_seq"])
    return tables, tally


def _export_buffer(engine: Any, ts: TableSnapshot, staging: Path) -> list[_Item]:
    """Buffered rows as Parquet files laid out exactly as a flush would write them
    (one per user for USER tables), so a restore registers them like any file."""
    rows = ts.buffer
    if rows is None or rows.num_rows == 0:
        return []
    t = ts.table
    if t.table_type == "user":
        users = pc.unique(rows.column(USER)).to_pylist()
        groups = [(u, rows.filter(pc.equal(rows.column(USER), u))) for u in users]
    else:
        groups = [(None, rows)]
    items = []
    for user, part in groups:
        part = part.combine_chunks()
        meta = {b"cairn.schema_version": str(t.schema_version).encode(),
                b"cairn.table_uid": t.uid.encode()}
        path = staging / f"{t.uid}-{len(items)}.parquet"
        pq.write_table(part.replace_schema_metadata(meta), str(path), compression="zstd")
        sha, size = hash_file(str(path))
        seqs = part.column(SEQ)
        entry = {
            "oid": sha, "size": size, "rows": part.num_rows,
            "schema_version": t.schema_version, "user_id": user,
            "min_seq": int(pc.min(seqs).as_py()), "max_seq": int(pc.max(seqs).as_py()),
            "source": "buffer",
        }
        items.append(_Item(path, size, sha, entry, {}, temporary=True))
    return items


def _store(
    repo: Repository, ctx: JobContext, item: _Item, tally: _Tally, lock: Any, throttle: Throttle
) -> None:
    base = tally.bytes_done
    # Only bytes really moved count against the throttle, not deduplicated ones.
    moving = throttle.rate > 0 and not (item.sha256 and repo.has_content(item.sha256, item.size))

    def on_bytes(n: int) -> None:
        nonlocal base
        base += n
        ctx.progress(bytes_done=base)
        faults.hit("backup.mid_object", job_id=ctx.job_id, bytes=n)
        if moving:
            throttle.spent(n)

    put = repo.put_file(
        str(item.path), sha256=item.sha256, size=item.size, on_bytes=on_bytes,
        should_stop=lambda: ctx.cancelled, lock=lock,
    )
    # A compressed or encrypted object is named apart from the file's own sha256,
    # which the entry keeps for the restore to register.
    item.entry["oid"] = put.oid
    if put.oid != put.sha256:
        item.entry["sha256"] = put.sha256
    tally.bytes_done += item.size
    tally.files_done += 1
    if put.written:
        tally.bytes_written += put.size
    ctx.progress(files_done=tally.files_done, bytes_done=tally.bytes_done)
    if item.temporary:
        with contextlib.suppress(OSError):
            os.unlink(item.path)
