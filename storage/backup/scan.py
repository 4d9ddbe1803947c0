"""Reading every manifest of a target (SHOW BACKUPS … IN, RESTORE's choice).

Each manifest is read once: a damaged one's hints (selection.hints) come from
the bytes already read, not from a second GET. On object storage, where one
GET costs a round trip (15–35 ms on moto, tens on a real store), manifests are
read by up to SCAN_THREADS at a time: before, 5,000 planted junk manifests
made one SHOW BACKUPS IN take 170 s, read one after another, each twice.

What they cost while read and parsed is bounded per target (`Budget`): a
manifest's JSON parsed costs up to some 20 times its size (64 MiB of short
strings, `"ab",` repeated: 1.2 GB), and 16 planted 64 MiB manifests read at
once would have cost ~35 GB in one SHOW BACKUPS."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from catalog.diskerrors import DataDirUnavailable
from catalog.errors import CairnError, NotFound, PermissionDenied, Unavailable

from .atomic import SMALL_MAX, TooLarge
from .selection import UNAVAILABLE, damaged_entry

log = logging.getLogger(__name__)

SCAN_THREADS = 16

# A manifest listed at or below FREE bytes is read (at most that many) without
# the budget; a larger one holds its listed size of its target's SCAN_BUDGET
# (the whole budget at most) while it is read and parsed, and one found larger
# than listed (a store that lies) is read again holding the whole budget.
FREE = 64 << 10
SCAN_BUDGET = 16 << 20

# (backup_id, the most bytes to read: past it TooLarge) -> the bytes, None if gone
Read = Callable[[str, int], bytes | None]
Unpack = Callable[[bytes, str], dict[str, Any]]
# One manifest: its checked document, or its damaged entry; both None when it is gone.
Scanned = tuple[dict[str, Any] | None, dict[str, Any] | None]


# A wait for a target's budget fails (UNAVAILABLE) once nothing of it was let
# go for this long: it waited for good behind a store dripping a large
# manifest, in a job process until KILL JOB, and a statement's call, abandoned
# at s3_deadline_seconds, kept one of the target's few call slots meanwhile.
STALL_SECONDS = 300.0


class Stalled(Unavailable):
    """A wait for a target's budget that saw nothing let go for STALL_SECONDS."""


class Budget:
    """Bytes of one target's manifests being read and parsed at once (in this
    process: every statement's scans of it together). Per target, so that a
    store that drips a large manifest holds up no scan of another."""

    def __init__(self, total: int, uri: str = "") -> None:
        self.total, self.uri = total, uri
        self.used = 0
        self.let_go = 0  # how many holds ended: a wait that sees it move is not stalled
        self.stalls = 0  # waits that ended Stalled
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def held(self, n: int) -> Iterator[None]:
        n = min(n, self.total)
        with self.changed:
            seen, end = self.let_go, time.monotonic() + STALL_SECONDS
            while self.used + n > self.total:
                if self.let_go != seen:  # the reads ahead move: a new stall deadline
                    seen, end = self.let_go, time.monotonic() + STALL_SECONDS
                left = end - time.monotonic()
                if left <= 0:
                    self.stalls += 1
                    raise Stalled(
                        f"backup target '{self.uri}' is busy: the manifests being read from "
                        f"it hold its listing budget ({self.total} bytes) and none of them "
                        f"was read in {STALL_SECONDS:g} s (a store that sends them slowly): "
                        "try again later")
                self.changed.wait(left)
            self.used += n
        try:
            yield
        finally:
            with self.changed:
                self.used -= n
                self.let_go += 1
                self.changed.notify_all()


_budgets: dict[str, Budget] = {}
_budgets_lock = threading.Lock()


def budget_of(uri: str) -> Budget:
    with _budgets_lock:
        return _budgets.setdefault(uri, Budget(SCAN_BUDGET, uri))


def scan_manifests(
    ids: list[str], read: Read, unpack: Unpack, uri: str, parallel: bool,
    sizes: dict[str, int] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The readable manifests and the damaged entries of `ids`, in the order of `ids`,
    and the ids listed but not found when read (dropped meanwhile, or a target
    that cannot serve them: `not_served` after a second listing tells which).
    `sizes`: each manifest's size as the target lists it (none: FREE)."""
    budget = budget_of(uri)
    stalled: list[str] = []  # once one wait stalls, the scan's others do not wait in turn

    def one(backup_id: str) -> Scanned:
        listed = (sizes or {}).get(backup_id, 0)
        limit = FREE if listed <= FREE else min(listed, SMALL_MAX)
        while True:
            if stalled and limit > FREE:
                raise Stalled(stalled[0])
            try:
                with budget.held(0 if limit <= FREE else limit):
                    try:
                        return _one(backup_id, limit)
                    except TooLarge:
                        limit = SMALL_MAX  # larger than listed: read whole, holding it all
            except Stalled as exc:
                stalled.append(exc.message)
                raise

    def _one(backup_id: str, limit: int) -> Scanned:
        try:
            data = read(backup_id, limit)
        except TooLarge:
            if limit < SMALL_MAX:
                raise
            return None, _damaged(uri, backup_id, *_failed(), None)
        except (PermissionDenied, DataDirUnavailable):
            raise  # a link inside the target, a target that may not be read, or too
            # many open files here (the manifest may be sound): not damage to list
        except CairnError:
            return None, _damaged(uri, backup_id, *_failed(), None)
        if data is None:
            return None, None  # dropped while we listed
        try:
            return unpack(data, backup_id), None
        except NotFound:
            return None, None
        except (PermissionDenied, DataDirUnavailable):
            raise
        except CairnError:
            failed = _failed()  # its traceback let go first: the parse it holds
        return None, _damaged(uri, backup_id, *failed, data)  # is not held twice

    if parallel and len(ids) > 1:
        with ThreadPoolExecutor(min(SCAN_THREADS, len(ids)), "manifest-scan") as pool:
            results = list(pool.map(one, ids))
    else:
        results = [one(backup_id) for backup_id in ids]
    good = [m for m, _ in results if m is not None]
    bad = [e for _, e in results if e is not None]
    gone = [i for i, (m, e) in zip(ids, results, strict=True) if m is None and e is None]
    return good, bad, gone


def _failed() -> tuple[str, bool]:
    """The CairnError being handled, as its message and whether it is Unavailable:
    not the error itself, whose traceback holds the frames it came through
    (a 64 MiB manifest's parse, alive while `hints` parsed it again: 2.3 GB)."""
    exc = sys.exc_info()[1]
    assert isinstance(exc, CairnError)
    return exc.message, isinstance(exc, Unavailable)


def _damaged(uri: str, backup_id: str, message: str, unavailable: bool,
             data: bytes | None) -> dict[str, Any]:
    log.warning("unreadable manifest in %s: %s", uri, message)
    entry = damaged_entry(backup_id, message, data)
    if unavailable:
        entry[UNAVAILABLE] = True
    return entry



def not_served(uri: str, backup_id: str) -> Unavailable:
    """A manifest LISTed twice and "not found" when read between: whatever it
    references is unknown now, so nothing it may reference is deleted (a
    store that lied so made DROP BACKUP free a listed backup's objects)."""
    return Unavailable(
        f"backup target '{uri}' lists the manifest of backup '{backup_id}' "
        f"(manifests/{backup_id}.json) but answers 'not found' when it is read: what that "
        "backup holds cannot be told now (try again once the target serves it)")


def not_served_entry(uri: str, backup_id: str) -> dict[str, Any]:
    """`not_served` as a damaged entry of a listing (SHOW BACKUPS IN, RESTORE's choice)."""
    exc = not_served(uri, backup_id)
    log.warning("unreadable manifest in %s: %s", uri, exc.message)
    return {**damaged_entry(backup_id, exc.message, None), UNAVAILABLE: True}
