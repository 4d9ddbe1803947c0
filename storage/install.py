"""A backup becomes a namespace, all at once or not at all: what a RESTORE installs.

Every file is fetched to its final place (`FileStore.place`) under a new table
uid while its checksum is checked, then files and directories are synced.
Nothing references those files until ONE catalog batch registers the
namespace, its tables, schema versions and files together (and, with
`replace`, removes the old namespace's records in the same batch, under the
registry's `ddl` lock and the old tables' locks, so readers and snapshots see
the old namespace or the new one, never a mix). A failure or a cancellation
before that batch deletes the copies; a crash leaves unreferenced files that
start-up sweeps. Restored tables get new uids, so they never mix with what
they replace. The manifest was decoded and checked by backup/schema.py.

A restore to a time does its own work beside the copy (`Restore.beside`, in a
thread started before the first file is fetched): the archived changes read,
checked and replayed, their rows written as Parquet. Its result, joined after
the last file has landed, names the tables to install (`Beside.manifest`): the
base's fetched files it no longer holds (a table the replay dropped) are
deleted, never referenced. A failure of either side stops the other and
installs nothing."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from catalog import Batch, DataFile, Namespace, Table, TableSchema
from catalog.errors import AlreadyExists, BackupInvalid, Cancelled, InvalidArgument, NotFound
from catalog.ids import new_id

from . import clock_floor, jobblame, jobproc, nanstats, schema
from .backup.fetched_checks import first_problem
from .backup.restored import restored_namespace
from .backup.restored_tables import recorded
from .backup.schema import FileEntry, Manifest, TableEntry, to_doc
from .backup.seqs import seq_problem
from .files import FileStore
from .inflight import InFlight
from .live_rows import count as count_live
from .lockset import all_held
from .registry import RESERVED_NAMESPACES, Registry
from .work import Work

log = logging.getLogger("cairn.storage")

OnBytes = Callable[[int], None]
# Copies one file of the backup to a local path, checked (size, sha256).
Fetch = Callable[[FileEntry, Path, OnBytes], None]


@dataclass
class Beside:
    """What the work beside a restore's copy hands back (a restore to a time)."""

    manifest: Manifest  # the tables to install; their files are some of the base's
    table_uids: dict[str, str]  # of those tables (a base table keeps the uid given)
    files: list[DataFile]  # written beside the base's, under `table_uids`
    live_rows: dict[str, int]  # tables whose live rows are known without counting
    row_versions: int = 0  # row versions added


# Runs in a thread beside the copy: (file store, the base tables' uids, a check
# that raises once the restore stops) -> what to install.
BesideWork = Callable[[FileStore, dict[str, str], Callable[[], None]], Beside]


@dataclass
class Restore:
    """One restore: the manifest, where it goes, and the new table uids."""

    manifest: Manifest
    destination: str
    replace: bool = False
    table_uids: dict[str, str] = field(default_factory=dict)
    # Work beside the copy (rows replayed from an archive): see Beside.
    beside: BesideWork | None = None
    # Called under the registry's `ddl` lock just before the install batch:
    # raises to refuse the install (e.g. the destination is being archived).
    guard: Callable[[], None] | None = None
    # Rows a query of the restored tables sees: each table's count from the
    # manifest (or Beside.live_rows), else counted in its restored files (an
    # older manifest, replayed changes that overwrite rows).
    live_rows: int | None = None
    row_versions_added: int = 0  # by the work beside the copy
    # Files (and their bytes) the work beside the copy wrote and the restore
    # installed with the base's (`manifest` lists only the base's).
    files_added: int = 0
    bytes_added: int = 0
    # RESTORE TABLE: install the manifest's one table into the existing
    # namespace `destination` (replacing a table of its name with `replace`).
    table_only: bool = False
    # RESTORE TABLE: the name of the table restored in the backup (`manifest`
    # names it as installed), recorded in the namespace's `restored_tables`.
    table_from: str = ""
    # Files fetched at once (inflight.py): the caller sizes it to the source.
    workers: int = 1
    # The schema history the backup itself holds (of its tables before a
    # replay): a whole namespace's restore may keep as much (check_history).
    history_kept: int = 0

    def __post_init__(self) -> None:
        if self.destination in RESERVED_NAMESPACES:
            raise InvalidArgument(f"Namespace name '{self.destination}' is reserved")
        if not self.table_uids:
            self.table_uids = {t.name: new_id("tbl") for t in self.manifest.tables}

    @property
    def files_total(self) -> int:
        return sum(len(t.files) for t in self.manifest.tables)

    @property
    def bytes_total(self) -> int:
        return sum(f.size for t in self.manifest.tables for f in t.files)


def run(registry: Registry, restore: Restore, fetch: Fetch, work: Work,
        spent: OnBytes | None = None) -> None:
    """Fetch every file into place (with the work beside it), then install the
    namespace in one batch."""
    check_seq(registry, restore.manifest.backup_id, restore.manifest.max_seq)  # before a copy
    written: list[Path] = []
    side = _Side(registry.files, restore, work) if restore.beside is not None else None
    try:
        restore.history_kept = sum(
            schema.history_bytes(versions(restore.destination, t, restore.table_uids[t.name]))
            for t in restore.manifest.tables)
        check_history(registry, restore)  # refused before a file is fetched
        records = _fetch_all(registry, restore, fetch, work, spent, written,
                             side.raise_failed if side is not None else None)
        _check_contents(registry, restore, records, work, (0.5, 1.0))
        known = None
        if side is not None:
            out = side.join()
            written += [registry.files.abs(f.path) for f in out.files]
            records = _settle(registry, restore, out, records) + out.files
            known = out.live_rows
        records = nanstats.mend_restored(registry.files, records, written)  # after _settle's shas
        restore.live_rows = _count_live(registry, restore, records, known)
        work.fault("restore.before_install")
        work.check_cancelled()
        (install_table if restore.table_only else install)(registry, restore, records, work)
    except BaseException:
        if side is not None:
            side.stop()  # nothing is written after the cleanup below
            written += [registry.files.abs(f.path) for f in side.files()]
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for uid in {*restore.table_uids.values(), *(side.uids() if side else ())}:
            with contextlib.suppress(OSError):
                (registry.files.files_dir / uid).rmdir()
        raise
    # Installed: from here nothing may fail the job (the namespace is visible).
    work.fault("restore.after_install")


class _Side:
    """`restore.beside` in a thread of its own, started at once, beside the copy."""

    def __init__(self, files: FileStore, restore: Restore, work: Work) -> None:
        assert restore.beside is not None
        self._beside, self._files, self._work = restore.beside, files, work
        self._uids = dict(restore.table_uids)
        self._stopping = threading.Event()
        self._out: Beside | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="restore-beside", daemon=True)
        self._thread.start()

    def _check(self) -> None:
        if self._stopping.is_set():
            raise Cancelled("restore stopped")
        self._work.check_cancelled()

    def _run(self) -> None:
        try:
            self._out = self._beside(self._files, dict(self._uids), self._check)
        except BaseException as exc:  # handed to the job's thread by join()
            self._error = exc

    def raise_failed(self) -> None:
        """From the copy: the work beside it failed, so the restore stops now."""
        if self._error is not None:
            raise self._error

    def join(self) -> Beside:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._out is not None
        return self._out

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def files(self) -> list[DataFile]:
        """Files the work wrote, whether or not it finished."""
        return self._out.files if self._out is not None else []

    def uids(self) -> list[str]:
        return list(self._out.table_uids.values()) if self._out is not None else []


def _settle(registry: Registry, restore: Restore, out: Beside,
            records: list[DataFile]) -> list[DataFile]:
    """The restore becomes what the work beside it says (its tables and uids):
    the fetched files those tables still hold; the others (of a table the
    replay dropped) deleted, never referenced."""
    keep = {(out.table_uids[t.name], f.content_sha256)
            for t in out.manifest.tables for f in t.files}
    kept = []
    for rec in records:
        if (rec.table_uid, rec.sha256) in keep:
            kept.append(rec)
        else:
            registry.files.abs(rec.path).unlink(missing_ok=True)
    for uid in set(restore.table_uids.values()) - set(out.table_uids.values()):
        with contextlib.suppress(OSError):
            (registry.files.files_dir / uid).rmdir()
    restore.manifest, restore.table_uids = out.manifest, out.table_uids
    restore.row_versions_added = out.row_versions
    restore.files_added, restore.bytes_added = len(out.files), sum(f.bytes for f in out.files)
    return kept


def _check_contents(registry: Registry, restore: Restore, records: list[DataFile],
                    work: Work, share: tuple[float, float]) -> None:
    """Every fetched file is the file its entry describes (backup/contents.py,
    the check VERIFY makes too), read in a job process (fetched_checks.py),
    the job's fraction going through `share` as the files are checked (it
    stood still at the transfer's end until 2026-12-08: ~0.99 for as long as
    the check of every file took)."""
    entries = {(restore.table_uids[t.name], f.content_sha256): (f, t)
               for t in restore.manifest.tables if t.name in restore.table_uids
               for f in t.files}
    items = [(str(registry.files.abs(rec.path)), *entries[(rec.table_uid, rec.sha256)])
             for rec in records]
    if items and (wrong := jobblame.call(work, first_problem, items, jobproc.WORK,
                                         restore.manifest.backup_id, share=share)) is not None:
        raise BackupInvalid(wrong)


def _count_live(registry: Registry, restore: Restore, files: list[DataFile],
                known: dict[str, int] | None = None) -> int:
    """The restored tables' live rows: `known`'s (else the manifest's) where
    it has them, the others counted in their files."""
    if known is None:
        known = {t.name: t.live_rows for t in restore.manifest.tables if t.live_rows is not None}
    total = 0
    for t in restore.manifest.tables:
        if t.name in known:
            total += known[t.name]
            continue
        uid = restore.table_uids[t.name]
        groups: dict[str | None, list[Path]] = {}
        for f in files:
            if f.table_uid == uid:
                groups.setdefault(f.user_id, []).append(registry.files.abs(f.path))
        total += count_live(list(groups.values()), t.primary_key)
    return total


def _fetch_all(registry: Registry, restore: Restore, fetch: Fetch, work: Work,
               spent: OnBytes | None, written: list[Path],
               side_failed: Callable[[], None] | None = None,
               share: tuple[float, float] = (0.0, 0.5)) -> list[DataFile]:
    """Every file of the backup to its place, several at once (inflight.py);
    then all of them synced before anything references them. `side_failed`
    raises the error of the work beside the copy, which stops the copy too.
    The job's fraction goes through `share` by the bytes moved (the check of
    the files takes the rest: `_check_contents`)."""
    low, high = share

    def fraction(moved_bytes: int) -> float:
        return low + (high - low) * moved_bytes / max(1, restore.bytes_total)

    entries = [(restore.table_uids[t.name], f) for t in restore.manifest.tables for f in t.files]
    places = []
    for uid, _ in entries:
        file_id, rel, dest = registry.files.place(uid)
        written.append(dest)  # removed again on any failure
        places.append((file_id, rel, dest))
    flight = InFlight(restore.workers or 1)
    mutex, throttle = threading.Lock(), threading.Lock()
    done = {"bytes": 0, "files": 0}

    def moved(n: int) -> None:
        if flight.stopping:  # another file failed: this one stops too
            raise Cancelled("restore stopped: another file failed")
        if side_failed is not None:
            side_failed()
        with mutex:
            done["bytes"] += n
            total = done["bytes"]
        work.progress(bytes_done=total, fraction=fraction(total))
        work.fault("restore.mid_object", bytes=n)
        work.give_way()  # statements running first: wait (briefly) for them
        if spent is not None:
            with throttle:  # one rate for the whole run
                spent(n)

    def one(index: int, entry: tuple[str, FileEntry]) -> None:
        counted = 0

        def on_bytes(n: int) -> None:
            nonlocal counted
            counted += n
            moved(n)

        fetch(entry[1], places[index][2], on_bytes)
        FileStore.sync([places[index][2]])  # written back while other files copy
        with mutex:
            done["bytes"] += entry[1].size - counted
            done["files"] += 1
            files, total = done["files"], done["bytes"]
        work.progress(files_done=files, bytes_done=total, fraction=fraction(total))

    def before(index: int) -> None:
        work.fault("restore.before_object", index=index)
        if work.pause_requested:
            flight.drain()  # nothing moves while the job says paused
        work.check_cancelled()
        if side_failed is not None:
            side_failed()

    flight.run(entries, one, before)
    registry.files.sync(written)
    return [
        DataFile(
            table_uid=uid, file_id=file_id, path=rel, rows=f.rows, bytes=f.size,
            sha256=f.content_sha256, schema_version=f.schema_version, user_id=f.user_id,
            min_seq=f.min_seq, max_seq=f.max_seq,
            key_range={k: list(v) for k, v in f.key_range.items()},
        )
        for (uid, f), (file_id, rel, _) in zip(entries, places, strict=True)
    ]


def install(registry: Registry, restore: Restore, files: list[DataFile],
            work: Work | None = None) -> None:
    """Make the restored namespace visible in one catalog batch (removing the
    old one with `replace`). `work`: the job whose KILL or PAUSE stops its
    wait for a busy table's lock (storage/lockset.py)."""
    catalog, m, dest = registry.catalog, restore.manifest, restore.destination
    max_seq = max([m.max_seq, *(f.max_seq for f in files)])
    while True:
        old = sorted(registry.states(dest), key=lambda s: s.uid)
        with all_held(old, work), registry.ddl:  # writers to the old tables wait for the swap
            if restore.guard is not None:
                restore.guard()
            old_exists = catalog.get(Namespace, dest) is not None
            if old_exists and not restore.replace:
                raise AlreadyExists(f"Namespace '{dest}' already exists")
            if sorted(t.uid for t in registry.list_tables(dest)) != [s.uid for s in old]:
                continue  # a table came or went meanwhile: lock the new set
            check_history(registry, restore)
            check_seq(registry, m.backup_id, max_seq)  # the sequence only rises meanwhile
            catalog.ensure_seq_above(max_seq)
            batch = catalog.batch()
            old_paths = registry.remove_tables(batch, old)
            batch.put(restored_namespace(dest, m, catalog.server_id(),
                                         catalog.get(Namespace, dest),
                                         replayed=restore.beside is not None,
                                         at=clock_floor.restore_at(registry, dest)))
            for t in m.tables:
                put_table(registry, batch, dest, t, restore.table_uids[t.name])
            for f in files:
                batch.put(f)
            registry.commit_removal(batch, old)
        try:  # committed: the old tables' leftovers go, or start-up sweeps them
            registry.after_remove(old)
            registry.retire(old_paths)
        except Exception:
            log.warning("restore of %s left old buffers or files to sweep", dest, exc_info=True)
        break
    log.info("restored backup %s as namespace %s (%d tables, %d files)",
             m.backup_id, dest, len(m.tables), len(files))


def check_seq(registry: Registry, backup_id: str, max_seq: int) -> None:
    """BACKUP_INVALID when the backup's row versions reach past what a restore takes
    here (backup/seqs.py: raising the sequence there would leave later writes past what
    a backup may hold)."""
    if (wrong := seq_problem(backup_id, max_seq, registry.catalog.last_seq())) is not None:
        raise BackupInvalid(wrong)


def put_table(registry: Registry, batch: Batch, dest: str, t: TableEntry, uid: str) -> None:
    """Into `batch`: the restored table `t` as `dest`.`t.name` under `uid`, with
    every schema version. Its buffer's column family is not made here: a
    restored table's buffer is empty (every row is in its files), and the
    table's first write makes it (`Catalog._handle`), as a read of a missing
    family finds nothing. Creating or dropping a family holds the GIL for
    20-75 ms (RocksDB rewrites and re-parses its OPTIONS file, which grows
    with every family), and statements on the event loop wait for it: a
    RESTORE made one per table and a replace dropped the old ones."""
    batch.put(Table(
        namespace=dest, name=t.name, uid=uid, table_type=t.table_type,
        schema_version=t.schema_version, primary_key=list(t.primary_key),
        options=dict(t.options), created_at=t.created_at,
    ))
    for s in versions(dest, t, uid):
        batch.put(s)


def versions(dest: str, t: TableEntry, uid: str) -> list[TableSchema]:
    """The schema versions of the restored table `t` as the catalog keeps them."""
    return [TableSchema(uid, s.version, dest, t.name, columns=[to_doc(c) for c in s.columns],
                        created_at=s.created_at) for s in t.schemas]


def check_history(registry: Registry, restore: Restore) -> None:
    """INVALID_ARGUMENT if what the restore installs would take its
    destination's schema history past its bound (schema.check_restored_history):
    a RESTORE TABLE ... AS into a namespace made one that no BACKUP took."""
    dest = restore.destination
    tables = {t.name: versions(dest, t, restore.table_uids[t.name])
              for t in restore.manifest.tables}
    what = (f"RESTORE TABLE {dest}.{restore.manifest.tables[0].name}" if restore.table_only
            else f"RESTORE DATABASE {dest}")
    schema.check_restored_history(registry.catalog, dest, tables, what,
                                  whole=not restore.table_only, kept=restore.history_kept)


def install_table(registry: Registry, restore: Restore, files: list[DataFile],
                  work: Work | None = None) -> None:
    """Make the restored table visible in one catalog batch inside the existing
    namespace (removing the old table of its name with `replace`, in the same
    batch, under its locks: readers see the old table or the new, never a mix)."""
    catalog, m, dest = registry.catalog, restore.manifest, restore.destination
    (t,) = m.tables
    max_seq = max([m.max_seq, *(f.max_seq for f in files)])
    while True:
        old = [s for s in registry.states(dest) if s.table.name == t.name]
        with all_held(old, work), registry.ddl:
            if restore.guard is not None:
                restore.guard()
            space = catalog.get(Namespace, dest)
            if space is None:
                raise NotFound(f"Namespace '{dest}' does not exist")
            now = [x for x in registry.list_tables(dest) if x.name == t.name]
            if now and not restore.replace:
                raise AlreadyExists(f"Table '{dest}.{t.name}' already exists")
            if [x.uid for x in now] != [s.uid for s in old]:
                continue  # the table came or went meanwhile: lock the new one
            check_history(registry, restore)
            check_seq(registry, m.backup_id, max_seq)  # the sequence only rises meanwhile
            catalog.ensure_seq_above(max_seq)
            batch = catalog.batch()
            old_paths = registry.remove_tables(batch, old)
            put_table(registry, batch, dest, t, restore.table_uids[t.name])
            # which backup the table holds now, and since when (restored_tables.py)
            batch.put(dataclasses.replace(space, restored_tables=recorded(
                space.restored_tables, t.name, m, restore.table_from or t.name,
                at=clock_floor.restore_at(registry, dest), new=not now)))
            for f in files:
                batch.put(f)
            registry.commit_removal(batch, old)
        try:
            registry.after_remove(old)
            registry.retire(old_paths)
        except Exception:
            log.warning("restore of %s.%s left old buffers or files to sweep", dest, t.name,
                        exc_info=True)
        break
    log.info("restored table %s of backup %s as %s.%s (%d files)",
             t.name, m.backup_id, dest, t.name, len(files))
