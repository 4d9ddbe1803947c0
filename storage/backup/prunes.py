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
  minute from a background thread for its whole run (reading included), and
  removes it after its last delete. Settling waits while a marker of another
  live process is present. On this host a marker is dead once its process is
  (the same process: one that started after the marker was written has reused
  the pid), and like any other once not rewritten for `STALE_SECONDS` though
  its process lives (a planted marker naming pid 1 was waited for for ever).
  A marker of another host is live while it is rewritten: one not rewritten for `STALE_SECONDS` (or dated that far in
  the future) by the *store's* clock (its mtime against that of a file written
  now) is left over from a crash or planted: it is ignored and removed.
- A prune whose marker was removed by another (taken for a leftover) stops
  before it deletes anything (Unavailable): a backup may have relied on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow.fs as pafs

from catalog.errors import Unavailable

from . import records
from .atomic import delete_quietly, read_small, write_small
from .layout import PRUNES, join, temp_path, utc_now
from .listing import list_folder
from .procs import process_state
from .targets import Target
from .transfer import ShouldStop, check_stop

log = logging.getLogger(__name__)

STALE_SECONDS = 600.0  # a marker not rewritten for this long belongs to a dead prune
REFRESH_SECONDS = 60.0  # how often a running prune rewrites its marker
POLL_SECONDS = 0.05
CLOCK_SECONDS = 60.0  # how long a measured offset of a store's clock is reused

_mutexes: dict[str, threading.Lock] = {}
_mutexes_guard = threading.Lock()


def target_mutex(uri: str) -> threading.Lock:
    """The in-process mutex of one target (by its canonical uri)."""
    with _mutexes_guard:
        return _mutexes.setdefault(uri, threading.Lock())


class PruneMarker:
    """`prunes/<token>.json` while one prune runs (see the module docstring).
    `start` writes it and starts the thread that rewrites it every
    REFRESH_SECONDS; `check` raises once another has removed it."""

    def __init__(self, target: Target, durable: bool = True) -> None:
        self.target = target
        self.durable = durable
        self.path = join(target.base, PRUNES, f"{secrets.token_hex(8)}.json")
        self.lost = False
        self._done = threading.Event()
        self._guard = threading.Lock()  # a rewrite never lands after remove
        self._thread: threading.Thread | None = None

    def write(self, check: bool = False) -> None:
        doc = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": utc_now()}
        write_small(self.target, self.path, json.dumps(doc).encode(), self.durable, check=check)

    def start(self) -> None:
        # Read back: a marker the store acknowledged and dropped is a prune no
        # backup waits for (a lock is read back the same way: pruning.py).
        self.write(check=True)
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True,
                                        name="cairn-prune-marker")
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._done.wait(REFRESH_SECONDS):
            with self._guard:
                if self._done.is_set():
                    return
                try:
                    if read_small(self.target, self.path) is None:
                        self.lost = True  # another took it for a leftover
                        return
                    self.write()
                except Exception as exc:  # tried again; check() looks for it too
                    log.warning("could not rewrite prune marker %s: %s", self.path, exc)

    def check(self, look: bool = False) -> None:
        """Unavailable if another server removed this marker (it took this prune
        for a dead one, and a backup may rely on what it would delete);
        `look` reads the target, else only what the refresher saw."""
        if look and not self.lost:
            self.lost = read_small(self.target, self.path) is None
        if self.lost:
            raise Unavailable(
                f"prune of backup target '{self.target.uri}' stopped before deleting: its "
                f"marker '{PRUNES}/{self.path.rsplit('/', 1)[-1]}' was removed by another "
                "server that took it for a crash leftover (do the servers' clocks differ?); "
                "the objects it had not deleted stay until the next prune"
            )

    def remove(self) -> None:
        self._done.set()
        with self._guard:
            delete_quietly(self.target, self.path)


@contextlib.contextmanager
def pruning(target: Target, durable: bool = True) -> Iterator[PruneMarker]:
    """Held by prune from before it reads the locks until after its last delete."""
    with target_mutex(target.uri):
        _live_markers(target)  # removes those left by crashed prunes
        marker = PruneMarker(target, durable)
        marker.start()
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
    for info in list_folder(target, join(target.base, PRUNES)):
        if info.type == pafs.FileType.File and is_marker_name(info.base_name):
            _marker_state(target, info)


def _live_markers(target: Target) -> list[str]:
    """Markers of prunes running in other live processes; leftovers are removed."""
    live = []
    for info in list_folder(target, join(target.base, PRUNES)):
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
    mtime = info.mtime_ns
    age = 0 if mtime is None else store_now_ns(target, mtime) - mtime
    if age < -STALE_SECONDS * 1e9:
        # Dated that far in the future, which no prune writes (one planted with
        # a mtime in 2100 was waited for for ever by every BACKUP, RESTORE and
        # DROP BACKUP of its target, each holding a job slot).
        return "dead"
    if marker.host == socket.gethostname():
        if marker.pid == os.getpid():
            return "own"
        state = process_state(marker.pid, parse_stamp(marker.started_at))
        if state == "dead":
            return "dead"
        if state == "alive" and age <= STALE_SECONDS * 1e9:
            return "live"  # a prune still running (it rewrites its marker every minute)
        if state == "alive":
            # Not rewritten for so long although its pid lives: a planted marker
            # naming a process that never prunes (pid 1 held every BACKUP,
            # RESTORE and archive base of the target for ever, each a job slot),
            # or a prune whose refresh stopped, which then deletes nothing.
            return "dead"
    return "dead" if age > STALE_SECONDS * 1e9 else "live"  # not rewritten for so long


def parse_stamp(stamp: str) -> float:
    return datetime.strptime(stamp[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


_clock: dict[str, tuple[float, int]] = {}  # uri -> (when measured, store minus local ns)


def store_now_ns(target: Target, mtime: int) -> int:
    """Now by the clock that stamps the target's files. This server's own clock
    when the marker's age by it is plainly fine; else a file is written to
    `tmp/` and its mtime read (a server whose clock ran 11 minutes ahead took a
    running prune for a dead one). The offset is reused for a minute."""
    local = time.time_ns()
    if abs(local - mtime) <= STALE_SECONDS * 1e9:
        return local
    seen = _clock.get(target.uri)
    if seen is not None and time.monotonic() - seen[0] < CLOCK_SECONDS:
        return local + seen[1]
    probe = temp_path(target.base, target.writer)
    try:
        if target.fs.type_name != "s3":
            target.fs.create_dir(probe.rsplit("/", 1)[0], recursive=True)
        with target.fs.open_output_stream(probe):
            pass
        stamp: int | None = target.fs.get_file_info(probe).mtime_ns
    except OSError:
        return local  # cannot write there: this server's clock is all there is
    finally:
        delete_quietly(target, probe)
    if stamp is None:
        return local
    _clock[target.uri] = (time.monotonic(), stamp - local)
    return stamp
