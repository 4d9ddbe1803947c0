"""VERIFY ARCHIVE: reread every archived segment of a namespace in a target.

Each segment is read whole and checked like any object read back (segment.py:
typed header, checksums, sizes, order and ranges of its changes); then the
segments of each archive must be continuous: no overlap, and no gap except one
that a base backup bridges (archiving that found lost segments took a new base
and went on from it). The report lists every problem, not just the first, and
the restorable windows."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from catalog.errors import BackupInvalid, NotFound
from storage.archive import store
from storage.backup import PassphraseError, Repository

from .jobs import JobContext

MAX_ERRORS = 100


def verify_work(repo: Repository, namespace: str) -> Callable[[JobContext], dict[str, Any]]:
    def work(ctx: JobContext) -> dict[str, Any]:
        return verify(repo, namespace, ctx)

    return work


def verify(repo: Repository, namespace: str, ctx: JobContext | None = None) -> dict[str, Any]:
    errors: list[str] = []
    checked = nbytes = changes = 0
    bases = store.bases_of(repo, namespace)
    base_times = {b.snapshot_us for b in bases}
    all_runs: list[store.Run] = []
    ids = store.archive_ids(repo, namespace)
    listings = {aid: store.list_segments(repo, namespace, aid) for aid in ids}
    total = sum(len(x.segments) for x in listings.values())
    if ctx is not None:
        ctx.progress(files_total=total, files_done=0, force=True)
    for aid in ids:
        listing = listings[aid]
        errors += [f"archive {aid}: '{s}' is not a segment" for s in listing.strays]
        good = []
        for name in listing.segments:
            if ctx is not None:
                ctx.check_cancelled()
            try:
                header, _, size = store.read_segment(repo, namespace, aid, name)
            except PassphraseError:
                raise
            except (BackupInvalid, NotFound) as exc:
                errors.append(exc.message)
                continue
            checked += 1
            nbytes += size
            changes += header.count
            good.append(name)
            if ctx is not None:
                ctx.progress(files_done=checked, bytes_done=nbytes)
        runs, problems = store.runs_of(aid, good)
        errors += problems
        for prev, run in itertools.pairwise(runs):
            if run.after_us not in base_times:
                errors.append(
                    f"archive {aid}: gap between {prev.segments[-1].file} and "
                    f"{run.segments[0].file}: changes from {store.iso(prev.through_us)} "
                    f"to {store.iso(run.after_us)} are missing")
        all_runs += runs
    if total == 0:
        errors.append(f"no archived changes of namespace '{namespace}' in target '{repo.uri}'")
    wins = store.windows(all_runs, bases)
    return {
        "namespace": namespace,
        "is_valid": not errors,
        "segments_checked": checked,
        "bytes_checked": nbytes,
        "changes": changes,
        "windows": [{"start_time": store.iso(w.start_us), "end_time": store.iso(w.end_us),
                     "base_backup_id": w.bases[0].backup_id} for w in wins],
        "errors": errors[:MAX_ERRORS],
    }
