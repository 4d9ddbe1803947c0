"""A namespace snapshot into a repository: every file stored as an object, the
manifest written last, so the backup exists exactly when it is complete.

Files are stored several at once (storage/inflight.py: a bounded pool sized to
the cores and the target) while the snapshot's live rows are counted; the
manifest is written only once every one of them is stored, and each is
durable (fsynced locally) before its put returns.
Parquet files whose sha256 is known are deduplicated with one stat. On any
failure or cancellation the items in flight stop, then the backup's lock is
abandoned, which removes every object only this run wrote."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from catalog import utcnow
from catalog.errors import BackupInvalid, Cancelled

from ..inflight import InFlight, workers_for
from ..work import Work
from . import copier, footers, nullkeys, room, schema
from .codec import Found
from .image import FileToStore, NamespaceImage
from .locks import BackupLock
from .nofollow import handler_of
from .objects import PutResult
from .repository import Repository
from .transfer import check_stop

SLOT_WAIT = 0.05  # seconds between cancel checks while every copy slot is taken


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
    workers: int | None = None,
    archive: schema.ArchiveRef | None = None,
) -> schema.Manifest:
    """Store the image's files and publish its manifest; the manifest as stored.
    `workers`: objects in flight (default: sized to the cores and the target).
    `archive`: the archive the backup is a base of (None: of none). Writes
    the buffered rows the snapshot left to export first (`export_buffers`)."""
    image.export_buffers()
    room.check([image])  # before the long work, when the manifest is sure to be too big
    footers.check([image])  # and when a restore would refuse a file's footer
    nullkeys.check([image])  # or a file holding a NULL key
    files = image.files
    work.progress(files_total=len(files), bytes_total=sum(f.size for f in files), files_done=0,
                  bytes_done=0, force=True)
    # The lock's first write lists every known oid (store_all's `add` then only settles).
    with repo.lock(backup_id, should_stop=lambda: work.cancelled,
                   oids=[f.sha256 for f in files]) as lock:
        tally = store_counting(repo, work, [image], lock, spent, workers)
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
            "archive": None if archive is None else schema.to_doc(archive),
        })
        try:
            work.fault("backup.after_manifest")
            if work.cancelled:  # killed while the manifest was written: a cancelled job has none
                work.check_cancelled()
                raise Cancelled(f"backup '{backup_id}' was cancelled")
        except BaseException:  # a failed job leaves no manifest either (its lock still held)
            with contextlib.suppress(Exception):
                repo.delete_manifest(backup_id)
            raise
    work.progress(files_done=tally.files_done, bytes_done=tally.bytes_done, force=True)
    return schema.load(doc)


def store_counting(repo: Repository, work: Work, images: list[NamespaceImage], lock: BackupLock,
                   spent: Callable[[int], None] | None = None,
                   workers: int | None = None) -> Tally:
    """`store_all` of the images' files (in order) while their live rows are
    counted (only the manifest needs them: counting first kept every byte
    waiting). The count reads the files, so exported buffer files are removed
    only once both are done (on a failure, the snapshot's release removes them)."""
    files = [f for i in images for f in i.files]
    with ThreadPoolExecutor(1, thread_name_prefix="cairn-count") as counter:
        counted = [counter.submit(i.count_live_rows) for i in images]
        tally = store_all(repo, work, files, lock, spent, workers)
        for c in counted:  # the pool's exit waits for the count however this ends
            c.result()
    for f in files:
        if f.temporary:
            with contextlib.suppress(OSError):
                os.unlink(f.path)
    # The snapshot's staging folder, empty now (its spills went as they were
    # exported): removed here, in the job process, so the snapshot's release
    # in the server finds nothing to remove (a folder's removal there was ~9
    # takes of the server's GIL a BACKUP, bench/gil_takes.py). On a failure
    # it is left, and the release removes it.
    for folder in {f.path.parent for f in files if f.temporary}:
        with contextlib.suppress(OSError):  # not empty, or gone
            os.rmdir(folder)
    return tally


def store_all(repo: Repository, work: Work, files: list[FileToStore], lock: BackupLock,
              spent: Callable[[int], None] | None = None, workers: int | None = None) -> Tally:
    """Store `files` under `lock`, several at once (`workers`, default sized to
    the cores and the target; one when throttled, as a capped rate gains nothing
    from several). Every put is durable when it returns; the tally counts them.

    `workers` bounds the copies moving bytes. A local put's fsync and publish
    wait for the disk, not a CPU, so its copy slot is handed on when its bytes
    are written (`on_copied`): the next copy runs while the disk takes the last
    one's (with every put fsyncing at its end, the workers used to wait on the
    disk together while the cores idled, then copy while the disk idled)."""
    copies = 1 if spent is not None else workers or workers_for(repo.target.kind)
    flight = InFlight(1 if copies == 1 else 2 * copies, normal=_in_copiers(repo))
    slots = threading.Semaphore(copies)
    tally = Tally(work, spent, len(files))
    # Record every known oid in one lock write before looking any up.
    lock.add([f.sha256 for f in files])
    # What is stored already, looked up at once on a local target: ~150
    # objects of a 50-table backup were a walk of 4 directory opens each.
    found = repo.find_contents([(f.sha256, f.size) for f in files])

    def before(index: int) -> None:
        work.fault("backup.before_object", index=index)
        if work.pause_requested:
            flight.drain()  # nothing moves while the job says paused
        work.check_cancelled()
        while not slots.acquire(timeout=SLOT_WAIT):
            work.check_cancelled()

    def store(index: int, item: FileToStore) -> None:
        held = [True]

        def copied() -> None:
            if held[0]:
                held[0] = False
                slots.release()

        try:
            _store(repo, work, index, item, tally, lock, flight, copied,
                   None if found is None else found[index])
        finally:
            copied()

    flight.run(files, store, before,
               None if found is None else (lambda index: found[index] is not None))
    return tally


def _in_copiers(repo: Repository) -> bool:
    """Whether the puts hand their bytes to copier processes (raw objects, fd to
    fd on a local target): then the transfer threads mostly wait and start at
    normal priority (inflight.py). A file compressed after all (zstd is chosen
    per file) lowers its thread first (objects.py); S3 uploads and encrypted
    puts use CPU on every thread, which stay at the job's lowered level."""
    store = repo.store
    return (repo.target.kind == "local" and copier.enabled() and store.write_keys is None
            and handler_of(repo.target.fs) is not None)


class Tally:
    """Counters shared by the objects in flight; the throttle sees one stream."""

    def __init__(self, work: Work, spent: Callable[[int], None] | None, files: int) -> None:
        self.work = work
        self.written = [0] * files  # bytes each file's put wrote (0: deduplicated)
        self.spent = spent
        self.bytes_done = 0
        self.files_done = 0
        self.bytes_written = 0
        self._mutex = threading.Lock()
        self._throttle = threading.Lock()

    def moved(self, n: int, throttled: bool) -> None:
        with self._mutex:
            self.bytes_done += n
            done = self.bytes_done
        self.work.progress(bytes_done=done)
        self.work.fault("backup.mid_object", bytes=n)
        self.work.give_way()  # statements running first: wait (briefly) for them
        if throttled and self.spent is not None:
            with self._throttle:  # one rate for the whole run, not one per worker
                self.spent(n)

    def finished(self, index: int, counted: int, size: int, written: int) -> None:
        with self._mutex:
            self.written[index] = written
            self.bytes_done += size - counted  # a put reports exactly its size; never drift
            self.files_done += 1
            self.bytes_written += written
            files, done = self.files_done, self.bytes_done
        self.work.progress(files_done=files, bytes_done=done)


def _store(repo: Repository, work: Work, index: int, item: FileToStore, tally: Tally,
           lock: BackupLock, flight: InFlight, copied: Callable[[], None],
           found: Found) -> None:
    if found is not None:  # stored already (store_all looked): nothing moves
        form, stored = found
        tally.moved(item.size, False)
        _stored(item, tally, index, item.size, PutResult(form.oid, stored, False, item.sha256,
                                                         item.size))
        return
    # Only bytes really moved count against the throttle, not deduplicated ones.
    moving = tally.spent is not None and not repo.has_content(item.sha256, item.size)
    counted = 0

    def on_bytes(n: int) -> None:
        nonlocal counted
        counted += n
        tally.moved(n, moving)

    if item.data is not None:  # a small export, stored from memory
        put = _put_data(repo, work, item, lock, flight, on_bytes)
        copied()
    else:
        put = repo.put_file(str(item.path), sha256=item.sha256, size=item.size, on_bytes=on_bytes,
                            should_stop=lambda: work.cancelled or flight.stopping, lock=lock,
                            on_copied=copied)
    _stored(item, tally, index, counted, put)


def _stored(item: FileToStore, tally: Tally, index: int, counted: int, put: PutResult) -> None:
    # A compressed or encrypted object is named apart from the file's own sha256,
    # which the entry keeps for the restore to register.
    item.entry.oid = put.oid
    if put.oid != put.sha256:
        item.entry.sha256 = put.sha256
    tally.finished(index, counted, item.size, put.size if put.written else 0)


def _put_data(repo: Repository, work: Work, item: FileToStore, lock: BackupLock,
              flight: InFlight, on_bytes: Callable[[int], None]) -> PutResult:
    """Store a file the snapshot kept in memory (`item.data`): its bytes are
    the ones hashed when it was made, so they are checked against that
    sha256 as a file's copy is."""
    assert item.data is not None
    check_stop(lambda: work.cancelled or flight.stopping)
    put = repo.put_bytes(item.data, lock=lock)
    if put.sha256 != item.sha256 or put.plain_size != item.size:
        raise BackupInvalid(f"the exported buffer '{item.path.name}' changed in memory before "
                            "it was stored")
    on_bytes(item.size)
    return put
