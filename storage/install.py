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
they replace. The manifest was decoded and checked by backup/schema.py."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from catalog import Batch, DataFile, Namespace, Table, TableSchema
from catalog.errors import AlreadyExists, BackupInvalid, Cancelled, InvalidArgument, NotFound
from catalog.ids import new_id

from .backup.contents import problem as content_problem
from .backup.contents import tail_of
from .backup.schema import MAX_SEQ, FileEntry, Manifest, TableEntry, to_doc
from .files import FileStore
from .inflight import InFlight
from .live_rows import count as count_live
from .registry import RESERVED_NAMESPACES, Registry
from .work import Work

log = logging.getLogger("cairn.storage")

OnBytes = Callable[[int], None]
# Copies one file of the backup to a local path, checked (size, sha256).
Fetch = Callable[[FileEntry, Path, OnBytes], None]


@dataclass
class Restore:
    """One restore: the manifest, where it goes, and the new table uids."""

    manifest: Manifest
    destination: str
    replace: bool = False
    table_uids: dict[str, str] = field(default_factory=dict)
    # Files to add beside the backup's (rows replayed from an archive), written
    # under the new table uids once the backup's files are in place.
    extra: Callable[[FileStore, dict[str, str]], list[DataFile]] | None = None
    # Called under the registry's `ddl` lock just before the install batch:
    # raises to refuse the install (e.g. the destination is being archived).
    guard: Callable[[], None] | None = None
    # Rows a query of the restored tables sees: the manifest's count, or counted
    # in the restored files when it has none (an older manifest, replayed changes).
    live_rows: int | None = None
    # RESTORE TABLE: install the manifest's one table into the existing
    # namespace `destination` (replacing a table of its name with `replace`).
    table_only: bool = False
    # Files fetched at once (inflight.py): the caller sizes it to the source.
    workers: int = 1

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
    """Fetch every file into place, then install the namespace in one batch."""
    written: list[Path] = []
    try:
        records = _fetch_all(registry, restore, fetch, work, spent, written)
        _check_contents(registry, restore, records)
        if restore.extra is not None:
            work.check_cancelled()
            added = restore.extra(registry.files, restore.table_uids)
            written += [registry.files.abs(f.path) for f in added]
            records += added
            registry.files.sync([registry.files.abs(f.path) for f in added])
        known = [t.live_rows for t in restore.manifest.tables]
        restore.live_rows = None if None in known else sum(v or 0 for v in known)
        if restore.live_rows is None or restore.extra is not None:
            restore.live_rows = _count_live(registry, restore, records)
        work.fault("restore.before_install")
        work.check_cancelled()
        (install_table if restore.table_only else install)(registry, restore, records)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for uid in restore.table_uids.values():
            with contextlib.suppress(OSError):
                (registry.files.files_dir / uid).rmdir()
        raise
    # Installed: from here nothing may fail the job (the namespace is visible).
    work.fault("restore.after_install")


def _check_contents(registry: Registry, restore: Restore, records: list[DataFile]) -> None:
    """Every fetched file is the file its entry describes (backup/contents.py,
    the check VERIFY makes too)."""
    entries = {(restore.table_uids[t.name], f.content_sha256): (f, t)
               for t in restore.manifest.tables if t.name in restore.table_uids
               for f in t.files}
    for rec in records:
        f, t = entries[(rec.table_uid, rec.sha256)]
        wrong = content_problem(tail_of(str(registry.files.abs(rec.path))), f, t)
        if wrong is not None:
            raise BackupInvalid(wrong)


def _count_live(registry: Registry, restore: Restore, files: list[DataFile]) -> int:
    keys = {restore.table_uids[t.name]: t.primary_key for t in restore.manifest.tables}
    total = 0
    for uid, key in keys.items():
        groups: dict[str | None, list[Path]] = {}
        for f in files:
            if f.table_uid == uid:
                groups.setdefault(f.user_id, []).append(registry.files.abs(f.path))
        total += count_live(list(groups.values()), key)
    return total


def _fetch_all(registry: Registry, restore: Restore, fetch: Fetch, work: Work,
               spent: OnBytes | None, written: list[Path]) -> list[DataFile]:
    """Every file of the backup to its place, several at once (inflight.py);
    then all of them synced before anything references them."""
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
        with mutex:
            done["bytes"] += n
            total = done["bytes"]
        work.progress(bytes_done=total)
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
        work.progress(files_done=files, bytes_done=total)

    def before(index: int) -> None:
        work.fault("restore.before_object", index=index)
        if work.pause_requested:
            flight.drain()  # nothing moves while the job says paused
        work.check_cancelled()

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


def install(registry: Registry, restore: Restore, files: list[DataFile]) -> None:
    """Make the restored namespace visible in one catalog batch (removing the
    old one with `replace`)."""
    catalog, m, dest = registry.catalog, restore.manifest, restore.destination
    max_seq = max([m.max_seq, *(f.max_seq for f in files)])
    if max_seq > MAX_SEQ:  # the decoder refuses this; never let it reach the catalog
        raise InvalidArgument(f"backup '{m.backup_id}' has an out-of-range max_seq")
    while True:
        old = sorted(registry.states(dest), key=lambda s: s.uid)
        with contextlib.ExitStack() as held:
            for st in old:  # writers to the old tables wait for the swap
                held.enter_context(st.flush_lock)
                held.enter_context(st.write_lock)
            with registry.ddl:
                if restore.guard is not None:
                    restore.guard()
                old_exists = catalog.get(Namespace, dest) is not None
                if old_exists and not restore.replace:
                    raise AlreadyExists(f"Namespace '{dest}' already exists")
                if sorted(t.uid for t in registry.list_tables(dest)) != [s.uid for s in old]:
                    continue  # a table came or went meanwhile: lock the new set
                catalog.ensure_seq_above(max_seq)
                batch = catalog.batch()
                old_paths = registry.remove_tables(batch, old)
                batch.put(Namespace(dest, created_at=m.namespace_record.created_at,
                                    options=dict(m.namespace_record.options)))
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
    for s in t.schemas:
        batch.put(TableSchema(uid, s.version, dest, t.name,
                              columns=[to_doc(c) for c in s.columns], created_at=s.created_at))


def install_table(registry: Registry, restore: Restore, files: list[DataFile]) -> None:
    """Make the restored table visible in one catalog batch inside the existing
    namespace (removing the old table of its name with `replace`, in the same
    batch, under its locks: readers see the old table or the new, never a mix)."""
    catalog, m, dest = registry.catalog, restore.manifest, restore.destination
    (t,) = m.tables
    max_seq = max([m.max_seq, *(f.max_seq for f in files)])
    if max_seq > MAX_SEQ:
        raise InvalidArgument(f"backup '{m.backup_id}' has an out-of-range max_seq")
    while True:
        old = [s for s in registry.states(dest) if s.table.name == t.name]
        with contextlib.ExitStack() as held:
            for st in old:
                held.enter_context(st.flush_lock)
                held.enter_context(st.write_lock)
            with registry.ddl:
                if restore.guard is not None:
                    restore.guard()
                if catalog.get(Namespace, dest) is None:
                    raise NotFound(f"Namespace '{dest}' does not exist")
                now = [x for x in registry.list_tables(dest) if x.name == t.name]
                if now and not restore.replace:
                    raise AlreadyExists(f"Table '{dest}.{t.name}' already exists")
                if [x.uid for x in now] != [s.uid for s in old]:
                    continue  # the table came or went meanwhile: lock the new one
                catalog.ensure_seq_above(max_seq)
                batch = catalog.batch()
                old_paths = registry.remove_tables(batch, old)
                put_table(registry, batch, dest, t, restore.table_uids[t.name])
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
