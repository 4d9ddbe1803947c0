"""Restore to a time: which base backup and which archived changes give the
namespace's state exactly as of an instant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from catalog.errors import BackupInvalid, InvalidArgument, NotFound
from storage.backup import Repository

from . import damaged, store
from .blocks import Entry, Rows
from .segment import SegmentName


@dataclass
class TimePlan:
    namespace: str
    as_of_us: int
    base_id: str
    base_us: int
    archive_id: str
    segments: list[SegmentName]  # those holding changes in (base_us, as_of_us]


def has_archives(repo: Repository, namespace: str) -> bool:
    """Is a RESTORE of `namespace` to a time one through archived changes? So
    it is when a backup of it is an archive's base, before that archive has
    shipped its first segment (its folder does not exist yet): a RESTORE to a
    time then took the bare base as a plain backup, and a write acknowledged
    after it, or a DROP NAMESPACE, was silently not there."""
    if store.archive_ids(repo, namespace):
        return True
    bases, _ = damaged.bases_and_damaged(repo, namespace)
    return any(b.archive is not None for b in bases)


def plan(repo: Repository, namespace: str, as_of: str, as_of_us: int) -> TimePlan:
    """The newest base backup at or before `as_of` inside a restorable window,
    and the window's segments up to `as_of`. NOT_FOUND before any base backup;
    INVALID_ARGUMENT past the newest restorable time (which it names) or
    between windows (which it lists); BACKUP_INVALID when the archive's folder
    holds a file that is not a segment or segments that overlap, or when a
    backup whose manifest cannot be read may be the base the time needs
    (damaged.py)."""
    runs, problems = store.all_runs(repo, namespace)
    bases, broken = damaged.bases_and_damaged(repo, namespace)
    broken = [d for d in broken if damaged.taken_by(d, as_of_us)]
    if not any(b.snapshot_us <= as_of_us for b in bases):
        damaged.refuse(repo, namespace, as_of, broken)
        raise NotFound(f"no backup of namespace '{namespace}' taken at or before {as_of} "
                       f"in target '{repo.uri}'")
    wins = store.windows(runs, bases)
    inside = [w for w in wins if w.start_us <= as_of_us <= w.end_us]
    # A file that is not a segment, or segments that overlap, in the archive
    # used (or, when no window holds the time, in any: the windows themselves
    # are then in doubt): VERIFY ARCHIVE calls it invalid, so the restore
    # refuses it too (which of two overlapping segments is true is unknown).
    used = [max(inside, key=lambda w: w.end_us).run.archive_id] if inside else list(problems)
    wrong = [p for aid in used for p in problems.get(aid, [])]
    if wrong:
        raise BackupInvalid(wrong[0])
    if not inside:
        # A run reaching the time whose base may be a backup that cannot be read.
        covering = [r for r in runs if r.after_us <= as_of_us <= r.through_us]
        damaged.refuse(repo, namespace, as_of,
                       [d for d in broken if any(damaged.may_base(d, r) for r in covering)])
        newest = max((w.end_us for w in wins), default=None)
        if newest is None:
            raise InvalidArgument(
                f"namespace '{namespace}' has no restorable window in target '{repo.uri}' "
                "(archived changes continuing a base backup)")
        if as_of_us > newest:
            raise InvalidArgument(
                f"as_of {as_of} is after the newest restorable time of namespace "
                f"'{namespace}', {store.iso(newest)}")
        listed = ", ".join(f"{store.iso(w.start_us)} to {store.iso(w.end_us)}" for w in wins)
        raise InvalidArgument(f"as_of {as_of} is in no restorable window of namespace "
                              f"'{namespace}'; the windows are: {listed}")
    w = max(inside, key=lambda w: w.end_us)
    # A base encrypted as the restore reads (with a passphrase or without) when
    # there is one: an older Cairn made an encrypted BACKUP a base of a plain
    # archive, whose segments a passphrase refuses.
    fits = [b for b in w.bases if b.snapshot_us <= as_of_us]
    alike = [b for b in fits if b.encrypted == repo.encrypted]
    base = max(alike or fits, key=lambda b: b.snapshot_us)
    # Empty segments say by their name alone that nothing changed; the one that
    # holds as_of is read all the same: it is what says the window reaches the
    # time (a planted one once did, unread, while VERIFY ARCHIVE called it corrupt).
    segs = [s for s in w.run.segments
            if s.through_us > base.snapshot_us and s.after_us < as_of_us
            and (not s.empty or as_of_us <= s.through_us)]
    return TimePlan(namespace, as_of_us, base.backup_id, base.snapshot_us, w.run.archive_id, segs)


def changes(repo: Repository, p: TimePlan,
            check: Callable[[], None] | None = None) -> Iterator[Entry]:
    """The plan's changes committed in (base, as_of], in commit order, every
    segment read and checked in full (BACKUP_INVALID if damaged); a block of
    row changes is cut to those inside the interval."""
    for name in p.segments:
        if check is not None:
            check()
        _, found, _ = store.read_segment(repo, p.namespace, p.archive_id, name)
        for c in found:
            if isinstance(c, Rows):
                inside = c.within(p.base_us, p.as_of_us)
                if inside is not None:
                    yield inside
            elif p.base_us < c.at_us <= p.as_of_us:
                yield c
