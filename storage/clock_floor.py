"""The floor under a snapshot's time, so one server's backups and archive
windows of a namespace rank in the order they were taken whatever the wall
clock does (stepped back by NTP, set back across a restart).

A snapshot's time is its cut (storage/archive/changes.py `cut`): the wall
clock, kept above every commit time handed out in this run. That alone let a
backup tie with the one before it (the clock stepped back: both cut at the
same ms, ranked then by created_at, the wall clock again) or fall before it
(the clock set back across a restart, when nothing in memory remembers the
first). The floor is what outlives both: the newest snapshot_at this server
recorded for the namespace (its catalog's backup records), and for an
archive's base, the end of the target's windows of the namespace."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

from catalog import Archive, Backup, Catalog, Namespace
from catalog.errors import NotFound

from .archive import changes, store
from .backup import Repository, restored
from .backup.restored_tables import newest_at

TRUSTED_AHEAD_US = 86_400 * 10**6  # a window ending further ahead is not this clock's


def recorded_us(catalog: Catalog, namespaces: Iterable[str]) -> dict[str, int]:
    """Per namespace, the newest snapshot_at (µs) of a backup this server took
    of it (its job's record; 0: none). Not a record ATTACH BACKUPS made (no job):
    another server's backup, or a manifest with any time its writer chose (a
    server whose clock ran ten years ahead, a forged 2099), floored every later
    backup of this server into that future. A record whose time does not
    parse counts as none."""
    wanted = set(namespaces)
    floors = dict.fromkeys(wanted, 0)
    for rec in catalog.scan(Backup):
        if rec.namespace in wanted and rec.job_id is not None:
            try:
                at = store.parse_us(rec.snapshot_at)
            except ValueError:
                continue
            floors[rec.namespace] = max(floors[rec.namespace], at)
    return floors


def restored_us(rec: Namespace) -> int:
    """When the namespace was last restored (`restored_from["at"]`, or a table of
    it, `restored_tables`: µs; 0: not
    known): a backup of it taken after is cut after that, so it counts as
    taken after the restore (restored.wrote_since) with the wall clock stepped
    back since. A time that does not parse, or more than a day ahead of the
    clock (not this clock's), counts as none."""
    trusted = int(time.time() * 1e6) + TRUSTED_AHEAD_US
    best = 0
    for at in ((rec.restored_from or {}).get("at"), newest_at(rec.restored_tables)):
        try:
            us = store.parse_us(str(at)) if at else 0
        except ValueError:
            continue
        best = max(best, us if us <= trusted else 0)
    return best


def windows_end_us(repo: Repository, namespace: str, server: str) -> int:
    """The newest time an archive window of this server's (`server`) of
    `namespace` in `repo` reaches (0: none): a new archive's base is cut after
    it, so its window comes after the old ones in SHOW RESTORE POINTS and for
    an as_of. Another server's windows of a namespace of that name are another
    database's (one whose clock ran ten years ahead cut this server's into
    2036): an archive is this server's when a base of it names this server."""
    try:
        listed = repo.listing(namespace)
    except NotFound:  # no target yet: no window
        return 0
    own = {m["archive"]["id"] for m in listed
           if "error" not in m and isinstance(m.get("archive"), dict)
           and (m.get("namespace_record") or {}).get("server") == server}
    runs, problems = store.all_runs(repo, namespace)
    # An archive with strays or overlaps is refused by every reader, and a
    # window reaching more than a day past the wall clock is a name planted
    # (an empty file named to end in 5138), not a clock that ran ahead: no
    # window of either counts (a clock set back by more than a day across a
    # restart may then start a new archive before the old: docs/sql.md).
    limit = int(time.time() * 1e6) + TRUSTED_AHEAD_US
    return max((r.through_us for r in runs
                if r.archive_id in own and not problems.get(r.archive_id)
                and r.through_us <= limit), default=0)


def restore_at(registry: Any, dest: str) -> str:
    """When a RESTORE into `dest` installs (its record's `restored_from["at"]`,
    restored.py): the wall clock, but after every time this server handed out
    for the namespace (the newest snapshot_at it recorded of it, its previous
    restore's, its change log's commit times and cuts, how far its archive
    shipped). Call it holding the namespace's tables (the install does): no
    commit of it comes between. The wall clock alone, set back (an NTP step)
    before a rollback, put the restore before backups taken ahead of it, and
    a time after the rollback took the backup it rolled back over (its rows
    back, `completed`), or an archive window it had ended."""
    previous = registry.catalog.get(Namespace, dest)
    floor = max(recorded_us(registry.catalog, [dest])[dest],
                restored_us(previous) if previous is not None else 0)
    arch = registry.catalog.get(Archive, dest)
    if arch is not None:  # what it shipped, and when it stopped (restore_run.time_plan)
        floor = max(floor, arch.shipped_us or 0)
        with contextlib.suppress(ValueError):
            floor = max(floor, store.parse_us(arch.stopped_at) if arch.stopped_at else 0)
    with registry.changes.holding(dest) as ns:
        at = max(store.parse_us(restored.now_us()), floor + 1, ns.last_us + 1, ns.snap_us + 1)
        ns.last_us = max(ns.last_us, at)  # later commits and cuts of it come after
    return store.iso_exact(at)


def stop_at(registry: Any, namespace: str, arch: Archive) -> str:
    """When STOP ARCHIVING of `namespace` stops archive `arch` (its record's
    `stopped_at`): the wall clock, but after what the archive shipped, the
    namespace's last restore and every commit time and cut handed out for it,
    rounded up to the millisecond. Whether a stopped archive is of the
    history in effect or of one a restore replaced is read from it
    (restore_run.time_plan): from the raw clock set back after a rollback, an
    archive started after the rollback stopped "before" it, and with its
    segments gone a time in its window was "no restorable window", not the
    changes it shipped missing from the target."""
    rec = registry.catalog.get(Namespace, namespace)
    floor = max(arch.shipped_us or 0, restored_us(rec) if rec is not None else 0)
    with registry.changes.holding(namespace) as ns:
        at = max(changes.now_us(), floor + 1, ns.last_us + 1, ns.snap_us + 1)
    return store.iso(-(-at // 1000) * 1000)
