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

from collections.abc import Iterable

from catalog import Backup, Catalog

from .archive import store
from .backup import Repository


def recorded_us(catalog: Catalog, namespaces: Iterable[str]) -> dict[str, int]:
    """Per namespace, the newest snapshot_at (µs) of a backup this server
    recorded of it (0: none). A record whose time does not parse counts as none."""
    wanted = set(namespaces)
    floors = dict.fromkeys(wanted, 0)
    for rec in catalog.scan(Backup):
        if rec.namespace in wanted:
            try:
                at = store.parse_us(rec.snapshot_at)
            except ValueError:
                continue
            floors[rec.namespace] = max(floors[rec.namespace], at)
    return floors


def windows_end_us(repo: Repository, namespace: str) -> int:
    """The newest time any archive window of `namespace` in `repo` reaches
    (0: none): a new archive's base is cut after it, so its window comes
    after the old ones in SHOW RESTORE POINTS and for an as_of."""
    runs, _ = store.all_runs(repo, namespace)
    return max((r.through_us for r in runs), default=0)
