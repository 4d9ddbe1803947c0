"""Reading every manifest of a target (SHOW BACKUPS … IN, RESTORE's choice).

Each manifest is read once: a damaged one's hints (selection.hints) come from
the bytes already read, not from a second GET. On object storage, where one
GET costs a round trip (15–35 ms on moto, tens on a real store), manifests are
read by up to SCAN_THREADS at a time: before, 5,000 planted junk manifests
made one SHOW BACKUPS IN take 170 s, read one after another, each twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from catalog.diskerrors import DataDirUnavailable
from catalog.errors import CairnError, NotFound, PermissionDenied, Unavailable

from .selection import damaged_entry

log = logging.getLogger(__name__)

SCAN_THREADS = 16

Read = Callable[[str], bytes | None]
Unpack = Callable[[bytes, str], dict[str, Any]]
# One manifest: its checked document, or its damaged entry; both None when it is gone.
Scanned = tuple[dict[str, Any] | None, dict[str, Any] | None]


def scan_manifests(
    ids: list[str], read: Read, unpack: Unpack, uri: str, parallel: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The readable manifests and the damaged entries of `ids`, in the order of `ids`,
    and the ids listed but not found when read (dropped meanwhile, or a target
    that cannot serve them: `not_served` after a second listing tells which)."""

    def one(backup_id: str) -> Scanned:
        try:
            data = read(backup_id)
        except (PermissionDenied, DataDirUnavailable):
            raise  # a link inside the target, a target that may not be read, or too
            # many open files here (the manifest may be sound): not damage to list
        except CairnError as exc:
            return None, _damaged(uri, backup_id, exc, None)
        if data is None:
            return None, None  # dropped while we listed
        try:
            return unpack(data, backup_id), None
        except NotFound:
            return None, None
        except (PermissionDenied, DataDirUnavailable):
            raise
        except CairnError as exc:
            return None, _damaged(uri, backup_id, exc, data)

    if parallel and len(ids) > 1:
        with ThreadPoolExecutor(min(SCAN_THREADS, len(ids)), "manifest-scan") as pool:
            results = list(pool.map(one, ids))
    else:
        results = [one(backup_id) for backup_id in ids]
    good = [m for m, _ in results if m is not None]
    bad = [e for _, e in results if e is not None]
    gone = [i for i, (m, e) in zip(ids, results, strict=True) if m is None and e is None]
    return good, bad, gone


def _damaged(uri: str, backup_id: str, exc: CairnError, data: bytes | None) -> dict[str, Any]:
    log.warning("unreadable manifest in %s: %s", uri, exc.message)
    entry = damaged_entry(backup_id, exc.message, data)
    if isinstance(exc, Unavailable):
        entry[UNAVAILABLE] = True
    return entry


# A damaged entry's mark: the manifest could not be read now (the target did
# not answer, or answered "not found" for a manifest it lists), not damage.
UNAVAILABLE = "unavailable"


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
