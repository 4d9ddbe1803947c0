"""Several namespaces from one backup set become visible together, or none
does: what RESTORE ALL installs.

Every member's files are fetched and checked exactly as for one namespace
(install.py: checksum, then the Parquet footer against the file's entry), then ONE catalog batch registers every namespace (with
`replace`, removing the old ones in the same batch) under the registry's
`ddl` lock and every old table's locks. A failure or cancellation before that
batch deletes every copy; a crash leaves unreferenced files that start-up
sweeps."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog import DataFile, Namespace
from catalog.errors import AlreadyExists

from . import clock_floor, nanstats
from .backup.restored import restored_namespace
from .install import (
    Fetch,
    OnBytes,
    Restore,
    _check_contents,
    _count_live,
    _fetch_all,
    check_seq,
    put_table,
)
from .lockset import all_held
from .registry import Registry
from .work import Work

log = logging.getLogger("cairn.storage")


@dataclass
class _Offset:
    """A Work whose file and byte counts continue after the members before."""

    work: Work
    files: int = 0
    bytes: int = 0

    @property
    def cancelled(self) -> bool:
        return self.work.cancelled

    def check_cancelled(self) -> None:
        self.work.check_cancelled()

    @property
    def pause_requested(self) -> bool:
        return self.work.pause_requested

    def give_way(self) -> None:
        self.work.give_way()

    def progress(self, *, files_done: int | None = None, files_total: int | None = None,
                 bytes_done: int | None = None, bytes_total: int | None = None,
                 rows: int | None = None, fraction: float | None = None,
                 force: bool = False) -> None:
        self.work.progress(
            files_done=None if files_done is None else files_done + self.files,
            bytes_done=None if bytes_done is None else bytes_done + self.bytes,
            files_total=files_total, bytes_total=bytes_total, rows=rows, fraction=fraction,
            force=force)

    def waiting(self, what: str | None) -> None:
        self.work.waiting(what)

    def fault(self, point: str, **info: Any) -> None:
        self.work.fault(point, **info)


def run_many(registry: Registry, restores: list[Restore], fetch: Fetch, work: Work,
             spent: OnBytes | None = None) -> None:
    """Fetch every member's files into place, then install them all in one batch."""
    written: list[Path] = []
    offset = _Offset(work)
    for r in restores:  # before a copy
        check_seq(registry, r.manifest.backup_id, r.manifest.max_seq)
    whole = max(1, sum(r.bytes_total for r in restores))
    try:
        records: list[list[DataFile]] = []
        for r in restores:
            # Of the job's fraction, each member's bytes twice: moved, then checked.
            low, mid = offset.bytes / whole, (offset.bytes + r.bytes_total / 2) / whole
            high = (offset.bytes + r.bytes_total) / whole
            got = _fetch_all(registry, r, fetch, offset, spent, written, share=(low, mid))
            # each file is what its entry says
            _check_contents(registry, r, got, work, (mid, high))
            got = nanstats.mend_restored(registry.files, got, written)
            records.append(got)
            offset.files += r.files_total
            offset.bytes += r.bytes_total
            known = [t.live_rows for t in r.manifest.tables]
            r.live_rows = (_count_live(registry, r, got) if None in known
                           else sum(v or 0 for v in known))
        work.fault("restore.before_install")
        work.check_cancelled()
        install_many(registry, restores, records, work)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for r in restores:
            for uid in r.table_uids.values():
                with contextlib.suppress(OSError):
                    (registry.files.files_dir / uid).rmdir()
        raise
    work.fault("restore.after_install")


def install_many(registry: Registry, restores: list[Restore],
                 records: list[list[DataFile]], work: Work | None = None) -> None:
    """Every restored namespace visible in one catalog batch (`work`: the
    job whose KILL or PAUSE stops its wait for a busy table's lock)."""
    catalog = registry.catalog
    dests = [r.destination for r in restores]
    max_seq = max([0, *(r.manifest.max_seq for r in restores),
                   *(f.max_seq for files in records for f in files)])
    while True:
        old = sorted((st for d in dests for st in registry.states(d)), key=lambda s: s.uid)
        with all_held(old, work), registry.ddl:
            for r in restores:
                if r.guard is not None:
                    r.guard()
                if catalog.get(Namespace, r.destination) is not None and not r.replace:
                    raise AlreadyExists(f"Namespace '{r.destination}' already exists")
            now = sorted(t.uid for d in dests for t in registry.list_tables(d))
            if now != [s.uid for s in old]:
                continue  # a table came or went meanwhile: lock the new set
            for r, files in zip(restores, records, strict=True):  # the sequence only rises
                check_seq(registry, r.manifest.backup_id,
                          max([r.manifest.max_seq, *(f.max_seq for f in files)]))
            catalog.ensure_seq_above(max_seq)
            batch = catalog.batch()
            old_paths = registry.remove_tables(batch, old)
            for r, files in zip(restores, records, strict=True):
                m, dest = r.manifest, r.destination
                batch.put(restored_namespace(dest, m, catalog.server_id(),
                                             catalog.get(Namespace, dest),
                                             at=clock_floor.restore_at(registry, dest)))
                for t in m.tables:
                    put_table(registry, batch, dest, t, r.table_uids[t.name])
                for f in files:
                    batch.put(f)
            registry.commit_removal(batch, old)
        try:
            registry.after_remove(old)
            registry.retire(old_paths)
        except Exception:
            log.warning("restore of %s left old buffers or files to sweep", dests, exc_info=True)
        break
    log.info("restored namespaces %s from one backup set", ", ".join(dests))
