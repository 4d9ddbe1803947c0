"""A namespace snapshot into a repository: every file stored as an object, the
manifest written last, so the backup exists exactly when it is complete.

Parquet files whose sha256 is known are deduplicated with one stat. On any
failure or cancellation the backup's lock is abandoned, which removes every
object only this run wrote."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from catalog import utcnow

from ..work import Work
from . import schema
from .image import FileToStore, NamespaceImage
from .locks import BackupLock
from .repository import Repository


def write_backup(
    repo: Repository,
    image: NamespaceImage,
    backup_id: str,
    *,
    snapshot_at: str,
    label: str | None,
    work: Work,
    spent: Callable[[int], None] | None = None,
    scope: schema.Scope | None = None,
) -> schema.Manifest:
    """Store the image's files and publish its manifest; the manifest as stored."""
    files = image.files
    work.progress(files_total=len(files), bytes_total=sum(f.size for f in files), files_done=0,
                  bytes_done=0, rows=image.rows, force=True)
    tally = _Tally()
    with repo.lock(backup_id, should_stop=lambda: work.cancelled) as lock:
        # Record every known oid in one lock write before looking any up.
        lock.add([f.sha256 for f in files])
        for index, item in enumerate(files):
            work.fault("backup.before_object", index=index)
            work.check_cancelled()
            _store(repo, work, item, tally, lock, spent)
        work.fault("backup.before_manifest")
        work.check_cancelled()
        doc = repo.write_manifest({
            **({} if scope is None else {"scope": schema.to_doc(scope)}),
            "backup_id": backup_id,
            "namespace": image.namespace,
            "created_at": utcnow(),
            "snapshot_at": snapshot_at,
            "label": label,
            "namespace_record": schema.to_doc(image.record),
            "max_seq": image.max_seq,
            "tables": [schema.to_doc(t) for t in image.tables],
            "totals": {"bytes_written": tally.bytes_written, "live_rows": image.live_rows},
        })
        work.fault("backup.after_manifest")
    work.progress(files_done=tally.files_done, bytes_done=tally.bytes_done, force=True)
    return schema.load(doc)


class _Tally:
    def __init__(self) -> None:
        self.bytes_done = 0
        self.files_done = 0
        self.bytes_written = 0


def _store(repo: Repository, work: Work, item: FileToStore, tally: _Tally, lock: BackupLock,
           spent: Callable[[int], None] | None) -> None:
    base = tally.bytes_done
    # Only bytes really moved count against the throttle, not deduplicated ones.
    moving = spent is not None and not repo.has_content(item.sha256, item.size)

    def on_bytes(n: int) -> None:
        nonlocal base
        base += n
        work.progress(bytes_done=base)
        work.fault("backup.mid_object", bytes=n)
        if moving and spent is not None:
            spent(n)

    put = repo.put_file(str(item.path), sha256=item.sha256, size=item.size, on_bytes=on_bytes,
                        should_stop=lambda: work.cancelled, lock=lock)
    # A compressed or encrypted object is named apart from the file's own sha256,
    # which the entry keeps for the restore to register.
    item.entry.oid = put.oid
    if put.oid != put.sha256:
        item.entry.sha256 = put.sha256
    tally.bytes_done += item.size
    tally.files_done += 1
    if put.written:
        tally.bytes_written += put.size
    work.progress(files_done=tally.files_done, bytes_done=tally.bytes_done)
    if item.temporary:
        with contextlib.suppress(OSError):
            os.unlink(item.path)
