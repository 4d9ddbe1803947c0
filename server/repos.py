"""A statement's target -> an open backup repository (roots and named targets applied)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import socket
import weakref
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from catalog import Backup, Catalog
from storage import jobproc
from storage.backup import Repository, open_repository, resolve_target
from storage.backup.pruning import DEAD_LOCK_SECONDS
from storage.backup.recorded import Record, unpickled

from .state import Cairn

log = logging.getLogger("cairn.backup")

# A temp file in a shared target that is not this server's is removed by its
# start-up clean-up only once older than this: a write in flight keeps its
# file's mtime fresh, and an upload staged on S3 is copied at once.
FOREIGN_TMP_SECONDS = 24 * 3600.0


def repository(cairn: Cairn, target: str, passphrase: str | None = None,
               compression: str = "zstd") -> Repository:
    cfg = cairn.config
    # The data directory as resolved at start (`Cairn.data_dir`), and this
    # server's mark made once: resolved again here, it was ~18 system calls
    # a statement naming a target (an lstat a component, three times), each
    # a take of the GIL beside the statements on the event loop
    # (docs/performance.md, bench/gil_takes.py).
    data_dir = str(cairn.data_dir)
    resolved = resolve_target(target, cfg.backup_roots, cfg.backup.targets, data_dir)
    repo = open_repository(replace(resolved, writer=writer_of(data_dir)),
                           passphrase=passphrase, compression=compression,
                           scratch_dir=str(cairn.data_dir / "tmp"))
    # A lock kept for a resume must outlive its window before another server's
    # prune takes it for a dead backup's.
    repo.dead_lock_seconds = max(DEAD_LOCK_SECONDS, cfg.resume_window_seconds)
    # A manifest that contradicts this server's record of its backup is damaged.
    repo.recorded = CatalogRecords(cairn.catalog, repo.uri)
    return repo


class CatalogRecords:
    """This server's catalog's records of the backups in target `uri`
    (storage/backup/recorded.py), read when asked; a job process receives
    them as read then."""

    def __init__(self, catalog: Catalog, uri: str) -> None:
        self.catalog, self.uri = catalog, uri

    def get(self, backup_id: str) -> Record | None:
        b = self.catalog.get(Backup, backup_id)
        return None if b is None or b.target != self.uri else _record(b, self.catalog.server_id())

    def all(self) -> Mapping[str, Record]:
        return self._read()[0]

    def _read(self) -> tuple[Mapping[str, Record], bytes]:
        """The records, and them pickled, read again only once a Backup record
        was written since (`Catalog.writes`, taken before the scan): each listing
        and each call to a job process scanned every backup record of the server
        (10,000: ~170 ms, and ~135 ms to pickle this target's 5,000)."""
        stamp = self.catalog.writes[Backup.FAMILY]
        known = _RECORDS.setdefault(self.catalog, {})
        hit = known.get(self.uri)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        server = self.catalog.server_id()
        records = {b.backup_id: _record(b, server) for b in self.catalog.scan(Backup)
                   if b.target == self.uri}
        blob = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
        known[self.uri] = (stamp, records, blob)
        return records, blob

    def __reduce__(self) -> tuple[Any, ...]:
        return (unpickled, (self._read()[1],))


# A catalog's records of each target, as last read: (Catalog.writes of
# Backup then, the records, them pickled for a job process).
_RECORDS: weakref.WeakKeyDictionary[Catalog, dict[str, tuple[int, dict[str, Record], bytes]]] = (
    weakref.WeakKeyDictionary())


def _record(b: Backup, server: str) -> Record:
    """What `b` vouches for; `server` (this one) when a BACKUP here made it."""
    return {"namespace": b.namespace, "created_at": b.created_at, "snapshot_at": b.snapshot_at,
            "scope": b.scope, "server": None if b.job_id is None else server}


@functools.lru_cache(maxsize=16)
def writer_of(data_dir: str) -> str:
    """This server's mark on its temp files in a target: its host and data
    directory (what tells it from every other server), as 16 hex digits.
    Made once a process (a host name changed while it runs does not change
    it: the mark stays the one its temp files already carry)."""
    me = f"{socket.gethostname()}\0{os.path.realpath(data_dir)}"
    return hashlib.sha256(me.encode()).hexdigest()[:16]


def remove_own_tmp(repo: Repository) -> int:
    """Clean-up of the target's `tmp/`: this server's leftovers, the temp files
    of its processes that are gone (the server before a restart, a job process
    that was killed), and other servers' only when long abandoned: they may be
    writing into the same target right now. A file of a process of this
    server that runs (the server itself, a job process) stays: a job or an
    archive of its own may be writing it now (jobproc.process_tags: asked
    file by file, after the listing, so a job process started meanwhile counts)."""
    return repo.remove_tmp(FOREIGN_TMP_SECONDS, repo.target.writer,
                           lambda tag: tag in jobproc.process_tags())


def sweep_tmp(cairn: Cairn, target: str, running: bool = False) -> int:
    """`remove_own_tmp` of a target by its name or URI (a job's `target`).
    `running` (after a job of this server failed, not at start): only the
    files of its job processes seen to end, so another server's file in
    flight never goes, not even one of a server sharing this one's writer id
    (its host name and data dir path: two containers), nor a `.tar`'s."""
    repo = repository(cairn, target)
    if running:
        removed = repo.remove_tmp(None, repo.target.writer,
                                  only=lambda tag: tag in jobproc.ended_tags)
    else:
        removed = remove_own_tmp(repo)
    if removed:
        log.info("removed %d temp file(s) of this server's ended processes from %s",
                 removed, target)
    return removed
