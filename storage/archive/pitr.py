"""Restore to a time: which base backup and which archived changes give the
namespace's state exactly as of an instant."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from catalog.errors import BackupInvalid, InvalidArgument, NotFound
from storage.backup import Repository
from storage.backup.origin import Origin, own_filter, window_filter
from storage.backup.restored import era_us
from storage.backup.selection import unreadable

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


def plan(repo: Repository, namespace: str, as_of: str, as_of_us: int,
         origin: Origin | None = None, known: Collection[str] = (),
         base_id: str | None = None, shipped_lsn: int = 0) -> TimePlan | None:
    """A RESTORE of `namespace` to a time through archived changes: the newest
    base backup at or before `as_of` inside a restorable window, and the
    window's segments up to `as_of`. None when the target holds no archived
    changes a restore on this server replays (then `as_of` takes the newest
    backup at or before it, origin.choose_own).

    Only windows of this server's namespace (`origin`, origin.window_filter)
    whose base was taken after the restore of it in effect at `as_of`
    (restored.era_us; `known` is the caller's to judge likewise):
    bases it wrote, the archives they are bases of and `known` (this server's
    archive of it, from its catalog, before a base of it is listed); another
    server's namespace of the same name is another database, its windows
    (and the damage in its archives) are not this restore's, nor are the
    windows of the server this namespace was restored from (its changes
    after that are its own database's): that server's backups count only as
    backups to restore (origin.own_filter), as a plain RESTORE takes them. `base_id` (an
    explicit backup_id) is the base, whoever wrote it, and its archive's
    changes are replayed. The target holds archived changes from the moment
    a backup is an archive's base, before that archive has shipped its first
    segment (its folder does not exist yet): a RESTORE to a time then took the
    bare base as a plain backup, and a write acknowledged after it, or a DROP
    NAMESPACE, was silently not there.

    NOT_FOUND before any base backup; INVALID_ARGUMENT past the newest
    restorable time (which it names) or between windows (which it lists), or
    when `base_id` is the base of no archive (a BACKUP TABLE's, a set's
    member: _no_base says which, and names bases that give the time);
    BACKUP_INVALID when the archive's folder holds a file that is not a
    segment or segments that overlap, or when a backup whose manifest cannot
    be read may be the base the time needs (damaged.py), or when `as_of` is
    past the newest restorable time and this server's archive (`known`) has
    fewer changes in the target than `shipped_lsn`, what its catalog says
    it shipped (its last segments were removed), or when changes are missing
    between two segments of an archive (`gaps`, as VERIFY ARCHIVE finds them)
    after the last window ending by `as_of` (a segment removed from the
    middle: a time after it was "past the newest restorable time")."""
    entries = repo.listing(namespace)
    keep = None if base_id is not None else own_filter(origin, entries)
    framing = None if base_id is not None else window_filter(origin, entries)
    # bases from before the restore in effect then: the history it replaced
    since = 0 if base_id is not None else era_us(origin, as_of)
    bases: list[store.Base] = []  # what may be restored (lineage too)
    framed: list[store.Base] = []  # of those, what may start a window: this server's
    readable: list[store.Base] = []  # whoever's: what VERIFY ARCHIVE judges gaps by
    broken: list[damaged.Damaged] = []
    for m in entries:
        if "error" in m:
            broken.append(m)
        elif (b := store._base(m)) is not None:
            readable.append(b)
            if keep is None or keep(m):
                bases.append(b)
                if (framing is None or framing(m)) and b.snapshot_us >= since:
                    framed.append(b)
    runs, problems = store.all_runs(repo, namespace)  # every archive folder is a key
    if base_id is not None:
        named = _named_base(repo, namespace, bases, broken, base_id, as_of_us)
        if named.archive is None and not named.legacy:
            raise _no_base(repo, namespace, entries, store.windows(runs, readable), named,
                           as_of_us)
        bases, broken = [named], []
        framed = bases
    if keep is None and base_id is None:
        if not problems and not any(b.archive is not None for b in bases):
            return None
    else:
        ids = _archives_of(framed, known, set(problems))
        if not ids:
            if base_id is None:
                return None
            raise InvalidArgument(
                f"backup '{base_id}' is the base of no archived changes of namespace "
                f"'{namespace}' in target '{repo.uri}'; restore it without as_of, or name "
                "a base backup (SHOW RESTORE POINTS)")
        runs = [r for r in runs if r.archive_id in ids]
        problems = {aid: p for aid, p in problems.items() if aid in ids}
    broken = [d for d in broken if damaged.taken_by(d, as_of_us)]
    if not any(b.snapshot_us <= as_of_us for b in bases):
        damaged.refuse(repo, namespace, as_of, broken)
        others = [m["backup_id"] for m in entries if "error" not in m and keep is not None
                  and not keep(m) and (b := store._base(m)) is not None
                  and b.snapshot_us <= as_of_us]
        whose = "namespace" if keep is None else "this server's namespace"
        raise NotFound(f"no backup of {whose} '{namespace}' taken at or before {as_of} "
                       f"in target '{repo.uri}'" + _others(namespace, others))
    wins = store.windows(runs, framed)
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
        # A base's own instant: the base alone is exact to it (the changes
        # after it may be gone: its archive's first segments removed).
        alone = [b for b in framed if b.snapshot_us == as_of_us and b.archive is not None]
        if alone:
            b = max(alone, key=lambda b: b.encrypted == repo.encrypted)
            assert b.archive is not None
            return TimePlan(namespace, as_of_us, b.backup_id, b.snapshot_us, b.archive.id, [])
        # Changes missing from the middle of an archive, after the last window
        # ending by the time (VERIFY ARCHIVE names the gap): BACKUP_INVALID, as
        # for the last segments removed; not "past the newest restorable time".
        by_then = max((w.end_us for w in wins if w.end_us < as_of_us), default=None)
        holes = [(p, r) for p, r in gaps(runs, readable)
                 if gap_start(p) < as_of_us and (by_then is None or gap_start(p) >= by_then)]
        if holes:
            raise BackupInvalid(
                f"namespace '{namespace}' cannot be restored as of {as_of}: archived "
                f"changes are missing from target '{repo.uri}': "
                + gap_problem(*min(holes, key=lambda h: gap_start(h[0])))
                + (f"; the newest restorable time before it is {store.iso(by_then)}"
                   if by_then is not None else "") + " (VERIFY ARCHIVE names it)")
        newest = max((w.end_us for w in wins), default=None)
        # This server shipped more than the target holds (its last segments
        # removed, or all of them: then its base's cut is where they end).
        ends = [r.last_lsn for r in runs if r.archive_id in known]
        cuts = [b.archive.lsn for b in framed if b.archive is not None and b.archive.id in known]
        end = max(ends or cuts, default=None)
        if (newest is None or as_of_us > newest) and end is not None and end < shipped_lsn:
            raise BackupInvalid(
                (f"as_of {as_of} is after the newest restorable time of namespace "
                 f"'{namespace}', {store.iso(newest)}, and " if newest is not None else
                 f"namespace '{namespace}' has no restorable window as of {as_of}: ")
                + f"archived changes are missing from target '{repo.uri}': this server "
                f"shipped them up to lsn {shipped_lsn}, "
                + (f"its segments there end at lsn {end}" if ends else
                   f"it holds no segment of them after its base's cut at lsn {end}")
                + " (VERIFY ARCHIVE names them)")
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
            check: Callable[[], None] | None = None) -> Iterator[tuple[str, list[Entry]]]:
    """The plan's changes committed in (base, as_of], in commit order, as
    each segment's file name and its changes, every segment read and checked
    in full (BACKUP_INVALID if damaged); a block of row changes is cut to
    those inside the interval."""
    for name in p.segments:
        if check is not None:
            check()
        _, found, _ = store.read_segment(repo, p.namespace, p.archive_id, name)
        yield name.file, list(within(found, p.base_us, p.as_of_us))


def within(found: list[Entry], after_us: int, upto_us: int) -> Iterator[Entry]:
    """The changes of `found` committed in (after_us, upto_us]."""
    for c in found:
        if isinstance(c, Rows):
            inside = c.within(after_us, upto_us)
            if inside is not None:
                yield inside
        elif after_us < c.at_us <= upto_us:
            yield c


def gaps(runs: list[store.Run], bases: list[store.Base]
         ) -> Iterator[tuple[store.Run | store.Base, store.Run]]:
    """Each two consecutive runs of one archive whose changes between them are
    missing: the later does not start at a base backup of it (archiving that
    took a new base after lost segments starts its run there). So is an
    archive's first run that does not start at a base of it while a backup
    naming that archive has its cut before the run (its first segments were
    removed): then the pair is that base (the newest such) and the run."""
    by_archive: dict[str, list[store.Run]] = {}
    for r in runs:
        by_archive.setdefault(r.archive_id, []).append(r)
    for aid, mine in by_archive.items():
        ordered = sorted(mine, key=lambda r: r.after_lsn)
        before = [b for b in bases if not b.legacy and b.archive is not None
                  and b.archive.id == aid and b.snapshot_us < ordered[0].after_us
                  and b.archive.lsn <= ordered[0].after_lsn]
        pairs: list[tuple[store.Run | store.Base, store.Run]] = list(
            itertools.pairwise(ordered))
        if before:
            pairs.insert(0, (max(before, key=lambda b: b.snapshot_us), ordered[0]))
        for prev, run in pairs:
            if not _starts_at_base(run, bases):
                yield prev, run


def _starts_at_base(run: store.Run, bases: list[store.Base]) -> bool:
    return any(b.snapshot_us == run.after_us and store.is_base(b, run) for b in bases)


def gap_start(prev: store.Run | store.Base) -> int:
    """Where the changes a gap misses begin: the end of the run before it, or
    the snapshot of the base before it."""
    return prev.through_us if isinstance(prev, store.Run) else prev.snapshot_us


def gap_problem(prev: store.Run | store.Base, run: store.Run) -> str:
    """A gap as VERIFY ARCHIVE, SHOW RESTORE POINTS and RESTORE as_of name it."""
    after = (prev.segments[-1].file if isinstance(prev, store.Run)
             else f"base backup {prev.backup_id}")
    return (f"archive {run.archive_id}: gap between {after} and "
            f"{run.segments[0].file}: changes from {store.iso(gap_start(prev))} "
            f"to {store.iso(run.after_us)} are missing")


def gap_rows(runs: list[store.Run], bases: list[store.Base], namespace: str
             ) -> list[dict[str, Any]]:
    """SHOW RESTORE POINTS rows for the gaps: from where the changes go
    missing to the end of the run after them (or to its oldest base: from
    there it is a window), `error` naming the gap as VERIFY ARCHIVE and
    RESTORE do. `base_backup_id` is the base the changes after which are
    missing (an archive's first segments removed), else null."""
    out = []
    for prev, run in gaps(runs, bases):
        mine = [b.snapshot_us for b in bases if store.is_base(b, run)]
        out.append({
            "namespace": namespace, "start_time": store.iso(gap_start(prev)),
            "end_time": store.iso(min(mine, default=run.through_us)),
            "base_backup_id": None if isinstance(prev, store.Run) else prev.backup_id,
            "base_backups": 0, "segments": len(run.segments), "archive_id": run.archive_id,
            "error": gap_problem(prev, run),
        })
    return out


def _no_base(repo: Repository, namespace: str, entries: list[dict[str, Any]],
             wins: list[store.Window], named: store.Base, as_of_us: int) -> InvalidArgument:
    """A RESTORE to a time naming as its base (backup_id) a backup that is the
    base of no archive: what it is, and the bases that give the time."""
    m = next(e for e in entries if e.get("backup_id") == named.backup_id)
    raw = m.get("scope")
    scope: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if scope.get("kind") == "tables":
        what = (f"holds only tables {', '.join(scope.get('tables') or [])} of namespace "
                f"'{namespace}' (BACKUP TABLE): no archived changes continue it; restore "
                "them with RESTORE TABLE")
    elif scope.get("set_id"):
        what = (f"is a member of backup set '{scope['set_id']}' (BACKUP DATABASE a, b or "
                "BACKUP ALL), which is the base of no archived changes; restore it without "
                "as_of")
    else:
        what = (f"is the base of no archived changes of namespace '{namespace}' in target "
                f"'{repo.uri}'; restore it without as_of")
    able = sorted({b.backup_id for w in wins if w.start_us <= as_of_us <= w.end_us
                   for b in w.bases if b.snapshot_us <= as_of_us})
    return InvalidArgument(
        f"backup '{named.backup_id}' {what}. A restore to a time needs a base backup "
        + (f"of a window holding {store.iso(as_of_us)}: {', '.join(able[-10:])}"
           if able else "(SHOW RESTORE POINTS lists the windows and their bases)"))


def _archives_of(bases: list[store.Base], known: Collection[str], folders: set[str]) -> set[str]:
    """The archives whose changes a restore building on `bases` may replay:
    those they are bases of and the `known` ones in the target; every one when
    a base predates manifests naming their archive (matched by time alone)."""
    if any(b.legacy for b in bases):
        return folders
    return {b.archive.id for b in bases if b.archive is not None} | (set(known) & folders)


def _named_base(repo: Repository, namespace: str, bases: list[store.Base],
                broken: list[damaged.Damaged], base_id: str, as_of_us: int) -> store.Base:
    """The backup a RESTORE with both backup_id and as_of names as its base."""
    for b in bases:
        if b.backup_id == base_id:
            if b.snapshot_us > as_of_us:
                raise InvalidArgument(
                    f"as_of {store.iso(as_of_us)} is before backup '{base_id}' was taken "
                    f"({store.iso(b.snapshot_us)})")
            return b
    for d in broken:
        if d["backup_id"] == base_id:
            raise unreadable(d)(damaged.why(repo, d))
    raise NotFound(f"backup '{base_id}' of namespace '{namespace}' is not in target "
                   f"'{repo.uri}'")


def _others(namespace: str, ids: list[str]) -> str:
    """The NOT_FOUND's note on another server's backups a time could have used."""
    if not ids:
        return ""
    listed = ", ".join(ids[:10]) + (", …" if len(ids) > 10 else "")
    return (f"; the target's backups of a namespace '{namespace}' taken by then were written "
            f"by another server (another database of that name): {listed}; name one with "
            "backup_id = '…' to restore it (with as_of: to a time in its archived changes)")
