"""Keeping prune away from the objects a running backup is about to reuse.

A backup records an oid in its lock and only then looks the object up; prune
reads the locks, then the manifests, then deletes what nothing references. The
one bad interleaving is a prune that read the locks *before* the backup recorded
an oid and deletes the object *after* the backup found it present: the backup
would publish a manifest naming an object that is gone.

So after a backup records new oids it **settles**: it waits until every prune
that may have read the locks before that moment has finished. Then an object it
finds present stays present (any later prune sees the lock).

- In one process, each target has a mutex that prune holds from reading the
  locks to its last delete; settling passes through it.
- Across processes, prune announces itself with `prunes/<token>.json`
  (`{"host", "pid", "started_at"}`) before it reads the locks, rewrites it every
  minute while it runs, and removes it after its last delete. Settling waits
  while a marker of another live process is present. A marker of a dead process
  on this host, or one not rewritten for `STALE_SECONDS` (or dated that far in
  the future), is left over from a crash or planted: it is ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator

import pyarrow.fs as pafs

from . import records
from .atomic import delete_quietly, read_small, write_small
from .layout import PRUNES, join, utc_now
from .oserrors import reading
from .targets import Target
from .transfer import ShouldStop, check_stop

STALE_SECONDS = 600.0  # a marker not rewritten for this long belongs to a dead prune
REFRESH_SECONDS = 60.0  # how often a running prune rewrites its marker
POLL_SECONDS = 0.05

_mutexes: dict[str, threading.Lock] = {}
_mutexes_guard = threading.Lock()


def target_mutex(uri: str) -> threading.Lock:
    """The in-process mutex of one target (by its canonical uri)."""
    with _mutexes_guard:
        return _mutexes.setdefault(uri, threading.Lock())


class PruneMarker:
    """`prunes/<token>.json` while one prune runs (see the module docstring)."""

    def __init__(self, target: Target, durable: bool = True) -> None:
        self.target = target
        self.durable = durable
        self.path = join(target.base, PRUNES, f"{secrets.token_hex(8)}.json")
        self._written = 0.0

    def write(self) -> None:
        doc = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": utc_now()}
        write_small(self.target, self.path, json.dumps(doc).encode(), self.durable)
        self._written = time.monotonic()

    def refresh(self) -> None:
        """Rewrite the marker if a minute has passed, so it never looks stale."""
        if time.monotonic() - self._written >= REFRESH_SECONDS:
            self.write()

    def remove(self) -> None:
        delete_quietly(self.target, self.path)


@contextlib.contextmanager
def pruning(target: Target, durable: bool = True) -> Iterator[PruneMarker]:
    """Held by prune from before it reads the locks until after its last delete."""
    with target_mutex(target.uri):
        _live_markers(target)  # removes those left by crashed prunes
        marker = PruneMarker(target, durable)
        marker.write()
        try:
            yield marker
        finally:
            marker.remove()


def settle(target: Target, should_stop: ShouldStop | None = None) -> None:
    """Wait until no prune that may have read the locks before now is still running."""
    mutex = target_mutex(target.uri)
    while not mutex.acquire(timeout=POLL_SECONDS):
        check_stop(should_stop)
    mutex.release()  # prunes of this process that started before now have finished
    while _live_markers(target):
        check_stop(should_stop)
        time.sleep(POLL_SECONDS)


def is_marker_name(name: str) -> bool:
    """`<16 hex digits>.json`, the names PruneMarker gives."""
    stem = name[:-5]
    return name.endswith(".json") and len(stem) == 16 and all(c in "0123456789abcdef" for c in stem)


def check_markers(target: Target) -> None:
    """BackupInvalid if a prune marker is damaged (what DROP BACKUP checks before
    it removes anything, since its prune would refuse)."""
    selector = pafs.FileSelector(join(target.base, PRUNES), allow_not_found=True)
    with reading(target.uri):
        infos = target.fs.get_file_info(selector)
    for info in infos:
        if info.type == pafs.FileType.File and is_marker_name(info.base_name):
            _marker_state(target, info)


def _live_markers(target: Target) -> list[str]:
    """Markers of prunes running in other live processes; leftovers are removed."""
    selector = pafs.FileSelector(join(target.base, PRUNES), allow_not_found=True)
    with reading(target.uri):
        infos = target.fs.get_file_info(selector)
    live = []
    for info in infos:
        if info.type != pafs.FileType.File or not is_marker_name(info.base_name):
            continue  # only names Cairn gives markers are read, or removed
        state = _marker_state(target, info)
        if state == "live":
            live.append(info.path)
        elif state == "dead":
            delete_quietly(target, info.path)
    return live


def _marker_state(target: Target, info: pafs.FileInfo) -> str:
    """'own' (this process: the mutex covered it), 'dead' or 'live'. A marker is
    written atomically, so one that does not decode is damage (BackupInvalid),
    not a prune to wait for."""
    data = read_small(target, info.path)
    if data is None:
        return "dead"  # removed while we looked
    name = info.path.rsplit("/", 1)[-1]
    marker = records.decode(
        data, records.PruneMarker, f"prune marker '{PRUNES}/{name}' of backup target '{target.uri}'"
    )
    if marker.host == socket.gethostname():
        if marker.pid == os.getpid():
            return "own"
        if not _alive(marker.pid):
            return "dead"
    mtime = info.mtime_ns
    if mtime is not None and abs(time.time_ns() - mtime) > STALE_SECONDS * 1e9:
        # Not rewritten for STALE_SECONDS; or written that far in the future,
        # which no prune does (one planted with a mtime in 2100 was never
        # stale: every BACKUP, RESTORE and DROP BACKUP of its target waited
        # for it for ever, holding a job slot each).
        return "dead"
    return "live"


def _alive(pid: int) -> bool:
    """Whether a process of this host runs. A zombie does not: a job process
    killed with its server (storage/jobproc.py) stays one until its new parent
    reaps it, and its marker must not hold up the restarted server's sweep."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc: what os.kill said
