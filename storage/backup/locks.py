"""Backup locks: what a running backup relies on, so prune leaves it alone.

Until its manifest is written, nothing references the objects a running backup
has written or decided to reuse; a concurrent prune would see them as garbage.
So the backup records each oid in `locks/<backup_id>.json` *before* it looks the
object up or publishes it, and prune keeps every oid in every lock. The lock is
removed once the manifest exists (or the backup is abandoned).

A prune that read the locks just before a backup recorded an already-present,
unreferenced object could still delete it; so after recording new oids the lock
*settles* (waits for such prunes to finish, see prunes.py) before returning."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, Self

import msgspec

from catalog.errors import BackupInvalid

from . import records
from .layout import check_backup_id, check_oid, utc_now

log = logging.getLogger(__name__)


class BackupLock:
    """One running backup's lock. `add` rewrites the lock file only when it learns
    new oids, so a caller that registers every known sha256 up front pays one write;
    oids given when it is made (`oids`) are in its first write, which saves that
    one (the first `add` then only settles)."""

    def __init__(
        self,
        backup_id: str,
        write: Callable[[bytes], None],
        remove: Callable[[], None],
        abandon: Callable[[], int] | None = None,
        settle: Callable[[], None] | None = None,
        expand: Callable[[str], Iterable[str]] | None = None,
        oids: Iterable[str] = (),
    ) -> None:
        self.backup_id = check_backup_id(backup_id)
        self.created_at = utc_now()
        self._write = write
        self._remove = remove
        self._abandon = abandon
        self._settle = settle
        self._expand = expand
        self.on_end: Callable[[], None] | None = None  # runs once released or abandoned
        self.released = False
        self._mutex = threading.Lock()  # puts may run in a thread pool
        self.oids = self._names(oids)
        self._write(encode(self.backup_id, self.created_at, self.oids))
        self._unsettled = bool(self.oids)  # written, not yet settled: the first add does

    def add(self, oids: Iterable[str]) -> None:
        """Record oids; returns once the lock file on the target lists them and no
        prune that may have missed them is still running, so an object found
        present afterwards stays present.

        The oids are contents' sha256s; the lock file lists every object name
        each may be stored under (`expand`; the sha256 itself for a raw,
        unencrypted object: see codec.py)."""
        wanted = self._names(oids)
        with self._mutex:
            new = wanted - self.oids
            if self.released or not (new or self._unsettled):
                return
            if new:
                self._write(encode(self.backup_id, self.created_at, self.oids | new))
                self.oids |= new  # only once the file says so
            self._unsettled = False
        if self._settle is not None:
            self._settle()

    def release(self) -> None:
        """Remove the lock file; call after the manifest is written or on failure."""
        with self._mutex:
            if not self.released:
                self.released = True
                self._remove()
        self._ended()

    def abandon(self) -> int:
        """The run failed: remove the lock and the objects only it used. Returns bytes freed."""
        with self._mutex:
            if self.released:
                return 0
            self.released = True
        try:
            if self._abandon is None:
                self._remove()
                return 0
            return self._abandon()
        finally:
            self._ended()

    def _ended(self) -> None:
        end, self.on_end = self.on_end, None
        if end is not None:
            end()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """Success releases the lock; an exception (failure, Cancelled) abandons the
        run. A failing clean-up is logged, never raised over the original error."""
        if exc_type is None:
            self.release()
            return
        try:
            self.abandon()
        except Exception:
            log.warning("could not clean up after backup %s", self.backup_id, exc_info=True)
            with contextlib.suppress(Exception):
                self._remove()

    def _names(self, oids: Iterable[str]) -> set[str]:
        """Every object name the contents `oids` may be stored under."""
        names: set[str] = set()
        for oid in oids:
            check_oid(oid)
            names.update(self._expand(oid) if self._expand is not None else (oid,))
        return names


def encode(backup_id: str, created_at: str, oids: Iterable[str]) -> bytes:
    doc = {
        "backup_id": backup_id,
        "created_at": created_at,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "oids": sorted(oids),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes, backup_id: str, uri: str) -> dict[str, Any]:
    """A checked lock file; BackupInvalid names the field when it is damaged
    (prune then refuses: what the running backup relies on is unknown)."""
    what = f"lock file 'locks/{backup_id}.json' of backup target '{uri}'"
    lock = records.decode(data, records.Lock, what)
    if lock.backup_id != backup_id:
        raise BackupInvalid(f"{what} is corrupt: it names backup '{lock.backup_id}'")
    return msgspec.structs.asdict(lock)
