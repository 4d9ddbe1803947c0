"""Locks and prune, the part of a Repository that decides what may be deleted
(see locks.py and prunes.py for the protocol, docs/backup-format.md for the files)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow.fs as pafs

from catalog.errors import AlreadyExists, BackupInvalid, CairnError, Unavailable

from ..work import Work
from . import locks
from .atomic import SMALL_MAX, delete_quietly, make_dirs, write_small
from .discard import discard_skeleton
from .layout import (
    LOCKS,
    check_backup_id,
    check_oid,
    is_backup_id,
    join,
    lock_path,
    manifest_path,
)
from .listing import list_folder
from .locks import BackupLock
from .nofollow import handler_of
from .objects import ObjectStore
from .oserrors import reading, writing
from .procs import process_state
from .prunes import check_markers, parse_stamp, pruning, settle, store_now_ns
from .targets import Target
from .transfer import ShouldStop

log = logging.getLogger(__name__)

# Past this many candidates a prune of an object-storage target lists its
# objects once instead of looking each up.
LIST_ABOVE = 1000
# A lock whose process is gone (this host) is left over once not written for
# this long (at least: the server sets its resume_window when longer), since a
# backup that died keeps its lock for a resume within that window.
DEAD_LOCK_SECONDS = 24 * 3600.0


class LocksAndPrune:
    """Mixed into Repository, which provides the target, the store and the reads."""

    target: Target
    durable: bool
    store: ObjectStore
    dead_lock_seconds: float = DEAD_LOCK_SECONDS
    made_target: bool

    @property
    def uri(self) -> str:
        return self.target.uri

    def _writing(self) -> None:
        raise NotImplementedError

    def _confirm(self) -> None:
        raise NotImplementedError

    def _refuse_links(self) -> None:
        raise NotImplementedError

    def _read_small(self, path: str, limit: int = SMALL_MAX) -> bytes | None:
        raise NotImplementedError

    def referenced_objects(self) -> set[str]:
        raise NotImplementedError

    def check_prunable(self) -> None:
        """BackupInvalid while a lock or prune marker is damaged: a prune would
        refuse. DROP BACKUP asks first, so it removes nothing rather than half."""
        self.locked_objects()
        check_markers(self.target)

    def lock(self, backup_id: str, should_stop: ShouldStop | None = None,
             oids: Iterable[str] = ()) -> BackupLock:
        """Start protecting a running backup's objects from prune. Used as a context
        manager, the lock is released on success and on an exception the run is
        abandoned: the objects only it used are deleted again. `should_stop` ends
        a wait for a running prune (see prunes.py) with Cancelled. `oids`, the
        contents known already, are in the lock's first write."""
        check_backup_id(backup_id)
        self._writing()
        path = lock_path(self.target.base, backup_id)
        with reading(self.uri):
            taken = self.target.fs.get_file_info([path, manifest_path(self.target.base, backup_id)])
        if any(info.type != pafs.FileType.NotFound for info in taken):
            raise AlreadyExists(
                f"backup '{backup_id}' is already running or exists in target '{self.uri}'"
            )
        lock = self._new_lock(backup_id, should_stop, oids, expand=self.store.names_for)
        try:
            self._confirm()  # a failed backup's clean-up may have taken them (discard.py)
        except BaseException:
            lock.release()
            raise
        return lock

    def _new_lock(self, lock_id: str, should_stop: ShouldStop | None, oids: Iterable[str],
                  expand: Callable[[str], Iterable[str]] | None = None) -> BackupLock:
        """A lock file `locks/<lock_id>.json` of this target (not written yet)."""
        path = lock_path(self.target.base, lock_id)
        with writing(self.uri):
            make_dirs(self.target, join(self.target.base, LOCKS))

        def remove() -> None:
            with writing(self.uri), contextlib.suppress(FileNotFoundError):
                self.target.fs.delete_file(path)

        return BackupLock(
            lock_id,
            # Read back (check): a lock the store acknowledged and dropped would
            # leave the objects it keeps to a prune that reads no such lock.
            write=lambda data: write_small(self.target, path, data, self.durable, check=True),
            remove=remove,
            abandon=lambda: self.abandon(lock_id),
            settle=lambda: settle(self.target, should_stop),
            expand=expand,
            oids=oids,
        )

    def hold(self, lock_id: str, names: Iterable[str],
             should_stop: ShouldStop | None = None) -> BackupLock:
        """A lock that keeps the objects `names` (as a manifest lists them) from
        every prune while a restore reads them. Returns once written and settled:
        a prune that read the locks before it has finished, so an object present
        now stays present until the lock is released (or abandoned, which also
        prunes those of its objects nothing references any more)."""
        check_backup_id(lock_id)
        lock = self._new_lock(lock_id, should_stop, [check_oid(n) for n in names])
        try:
            lock.add(())  # settles
        except BaseException:
            lock.release()
            raise
        return lock

    def has_manifest(self, backup_id: str) -> bool:
        """Whether `manifests/<id>.json` is there (as `manifest_ids` lists it:
        on object storage keys below that name alone are no manifest)."""
        path = manifest_path(self.target.base, check_backup_id(backup_id))
        with reading(self.uri):
            kind = self.target.fs.get_file_info(path).type
        return kind == pafs.FileType.File or (
            kind != pafs.FileType.NotFound and self.target.kind != "s3")

    def list_locks(self) -> list[dict[str, Any]]:
        """Every lock; an unreadable one is {"backup_id", "error"} (prune refuses to run then)."""
        return [entry for entry, _ in self._locks()]

    def _locks(self) -> list[tuple[dict[str, Any], pafs.FileInfo]]:
        found = []
        gone = []
        for info in self._lock_files():
            entry = self._read_lock(info.path, info.base_name[:-5])
            if entry is not None:
                found.append((entry, info))
            else:
                gone.append(info.base_name)
        if gone and self.target.kind == "s3":
            # A lock listed, "not found" when read, and listed again: a store
            # that lies so had a DROP BACKUP take a running backup's lock for
            # gone and delete the objects it was reusing (the BACKUP then
            # failed 422). What it protects cannot be told now.
            kept = sorted(set(gone) & {i.base_name for i in self._lock_files()})
            if kept:
                raise Unavailable(
                    f"backup target '{self.uri}' lists the lock 'locks/{kept[0]}' but answers "
                    "'not found' when it is read: which objects it protects cannot be told "
                    "now (try again once the target serves it)")
        return found

    def _lock_files(self) -> list[pafs.FileInfo]:
        return [info for info in list_folder(self.target, join(self.target.base, LOCKS))
                if info.type == pafs.FileType.File and info.base_name.endswith(".json")
                and is_backup_id(info.base_name[:-5])]

    def _read_lock(self, path: str, backup_id: str) -> dict[str, Any] | None:
        """A lock as decoded, or its error; None when it is gone. Another server
        may be rewriting it as we read (object storage has been seen to answer a
        cut body then), so a damaged read is tried again before it counts."""
        error = ""
        for attempt in range(4):
            if attempt:
                time.sleep(0.05 * attempt)
            data = self._read_small(path)
            if data is None:
                return None
            try:
                return locks.decode(data, backup_id, self.uri)
            except CairnError as exc:
                error = exc.message
        return {"backup_id": backup_id, "error": error}

    def locked_objects(self, leftovers: dict[str, list[str]] | None = None) -> set[str]:
        """The objects the locks name; with `leftovers`, a lock whose writer is
        provably dead (`_left_over`) names none and goes there (path -> oids)."""
        used: set[str] = set()
        found = self._locks()
        for doc, _ in found:
            if "error" in doc:
                raise BackupInvalid(f"cannot tell which objects are in use: {doc['error']}")
        for doc, info in found:
            if leftovers is not None and self._left_over(doc, info):
                leftovers[info.path] = doc["oids"]
            else:
                used.update(doc["oids"])
        return used

    def _left_over(self, doc: dict[str, Any], info: pafs.FileInfo) -> bool:
        """A lock of a process of this host that is gone (no such pid, a zombie,
        or the pid reused since the lock was made), not written for
        `dead_lock_seconds` by the target's clock: its backup died and its
        server never cleaned it up (it never came back)."""
        if doc["host"] != socket.gethostname() or doc["pid"] == os.getpid():
            return False
        if process_state(doc["pid"], parse_stamp(doc["created_at"])) != "dead":
            return False
        mtime = info.mtime_ns
        return mtime is not None and (
            store_now_ns(self.target, mtime) - mtime > self.dead_lock_seconds * 1e9)

    def abandon(self, backup_id: str, made_target: bool = False) -> int:
        """Clean up after a backup that died: drop its lock and every object it
        recorded that nothing else uses; then, if it made the target (this
        instance wrote its config, or `made_target`), the target's skeleton
        when nothing else is in it (discard.py). Returns bytes freed."""
        check_backup_id(backup_id)
        self._refuse_links()
        path = lock_path(self.target.base, backup_id)
        data = self._read_small(path)
        oids: list[str] = []
        if data is not None:
            try:
                oids = locks.decode(data, backup_id, self.uri)["oids"]
            except CairnError as exc:
                log.warning("removing damaged lock: %s", exc.message)
        delete_quietly(self.target, path)
        freed = self.prune(candidates=oids) if oids else 0
        if self.made_target or made_target:
            discard_skeleton(self.target, self.durable)
        return freed

    def prune(
        self,
        keep: Iterable[str] = (),
        candidates: Iterable[str] | None = None,
        before_delete: Callable[[set[str]], None] | None = None,
        first: Callable[[], None] | None = None,
    ) -> int:
        """Delete objects no manifest, lock or `keep` references; only among
        `candidates` when given (DROP BACKUP passes the dropped backup's objects).
        `before_delete` is told the doomed oids once they are decided (a hook for
        tests that interleave a prune with a backup). `first` runs once the
        prune marker is written, before the locks and manifests are read (a
        drop removes its manifests there: a marker that cannot be written
        refuses the drop before anything is removed).

        Objects are listed first, then the locks are read, then the manifests: a
        backup writes its manifest before it drops its lock, so an object in use
        is always seen in one or the other. A backup that starts using an object
        while this runs waits for it to finish (prunes.py). Returns bytes freed."""
        self._refuse_links()
        wanted = None if candidates is None else sorted({check_oid(oid) for oid in candidates})
        if wanted is None:
            present = self.store.list()
        elif len(wanted) > LIST_ABOVE and handler_of(self.target.fs) is None:
            # Object storage looks names up one request each (a HEAD, and a
            # LIST for each one absent): a manifest header forged to list
            # 500,000 objects kept DROP BACKUP at it for an hour. One listing
            # costs what the target holds, 1,000 names a request.
            held = self.store.list()
            present = {oid: held[oid] for oid in wanted if oid in held}
        else:
            present = self.store.sizes(wanted)
        if not present and first is None:
            return 0
        with pruning(self.target, self.durable) as marker:
            if first is not None:
                first()
                if not present:
                    return 0
            leftovers: dict[str, list[str]] = {}
            in_use = self.locked_objects(leftovers)  # locks before manifests, see above
            in_use |= self.referenced_objects()
            in_use |= set(keep)
            if leftovers and wanted is not None:  # a dead backup's objects go too
                more = {o for oids in leftovers.values() for o in oids} - present.keys()
                present.update(self.store.sizes(sorted(more)))
            doomed = {oid: size for oid, size in present.items() if oid not in in_use}
            if before_delete is not None:
                before_delete(set(doomed))
            marker.check(look=bool(doomed or leftovers))  # taken for dead: delete nothing
            for path in leftovers:
                log.warning("removing %s of backup target '%s': its backup's process is gone "
                            "and it was not written for %.0f s", "/".join(path.rsplit("/", 2)[-2:]),
                            self.uri, self.dead_lock_seconds)
                delete_quietly(self.target, path)
            for oid in doomed:
                marker.check()
                self.store.delete(oid)
        return sum(doomed.values())


def prune_dropped(repo: LocksAndPrune, backup_id: str, candidates: set[str] | None, work: Work,
                  doomed: set[str] | None = None, first: Callable[[], None] | None = None) -> int:
    """DROP BACKUP's (and keep_last's) prune of a dropped backup's objects
    (None: of every object, after a drop whose prune failed left some), with
    its fault point `prune.before_delete` once the doomed are decided (added
    to `doomed` when given); `first` as `prune` runs it."""
    def decided(oids: set[str]) -> None:
        if doomed is not None:
            doomed.update(oids)
        work.fault("prune.before_delete", backup_id=backup_id, oids=oids)

    return repo.prune(candidates=candidates, before_delete=decided, first=first)
