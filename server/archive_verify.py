"""VERIFY ARCHIVE: reread every archived segment of a namespace in a target.

Each segment is read whole and checked like any object read back (segment.py:
typed header, checksums, sizes, order and ranges of its changes); then the
segments of each archive must be continuous: no overlap, and no gap except one
that a base backup bridges (archiving that found lost segments took a new base
and went on from it); then every object of each window's base backups is
reread as VERIFY BACKUP rereads it, since a RESTORE as_of copies them (before,
a base with a missing or truncated object verified valid while every restore
in its window refused it). The report lists every problem, not just the
first, and the restorable windows."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from catalog import Archive
from catalog.errors import BackupInvalid, NotFound
from storage import jobproc
from storage.archive import damaged, pitr, replay, store
from storage.archive.blocks import Entry
from storage.archive.segment import MAX_US, SegmentName
from storage.backup import PassphraseError, Repository
from storage.backup.schema import load, to_doc
from storage.backup.verify import Memo, manifest_digest, verify_bases, verify_objects

from . import archive_keys
from .jobcalls import job_call
from .jobs import JobContext

MAX_ERRORS = 100


@dataclass(frozen=True)
class Shipped:
    """What this server's catalog says it shipped into the target (read before
    the target is listed): every change up to `lsn` (at `us`) of archive `archive_id`."""

    archive_id: str
    lsn: int
    us: int | None
    base_lsn: int | None  # the current window's base's cut (segments continue from it)


def shipped_of(rec: Archive | None, uri: str) -> Shipped | None:
    """What `rec` (the catalog's archive of a namespace, read before the target
    is listed) says this server shipped into target `uri`, if anything."""
    if rec is None or rec.target != uri or not rec.shipped_lsn:
        return None
    return Shipped(rec.archive_id, rec.shipped_lsn, rec.shipped_us, rec.base_lsn)


def verify_work(repo: Repository, namespace: str, seq_now: Callable[[], int],
                shipped: Shipped | None = None,
                held: Callable[[], Collection[str]] = frozenset
                ) -> Callable[[JobContext], dict[str, Any]]:
    """The job: `seq_now` is the server's sequence (what a restore here takes:
    backup/seqs.py); `held` the archives its running restores to a time
    replay (restore_hold.held_here)."""
    def work(ctx: JobContext) -> dict[str, Any]:
        result = settled(repo, namespace, ctx, seq_now(), shipped, held)
        if not result["is_valid"]:
            ctx.found_invalid(f"archive of namespace '{namespace}' in target '{repo.uri}'",
                              result["errors"])
        elif result["not_checked"]:  # valid in what it checked: the job row says what not
            ctx.finding = (f"archive of namespace '{namespace}' in target '{repo.uri}' is "
                           "valid in the windows checked; "
                           + archive_keys.describe(namespace, result["not_checked"]))
        return result

    return work


RUNS = 3  # of a VERIFY ARCHIVE whose target a drop changed under it


def settled(repo: Repository, namespace: str, ctx: JobContext, seq_now: int,
            shipped: Shipped | None,
            held: Callable[[], Collection[str]] = frozenset) -> dict[str, Any]:
    """`verify`, run again (up to RUNS in all) when it found problems while a
    manifest or segment that was in the target as it began is gone as it
    ends: a DROP BACKUP or keep_last beside it dropped a base and pruned
    what only that base needed (its objects, its segments) under it, which
    is no damage. The answer is then the target's as the drop left it, as
    a VERIFY run after the drop says (before, it was INVALID: "archived
    segment … does not exist", "object … is missing")."""
    for _ in range(RUNS):
        ctx.check_cancelled()
        before = _present(repo, namespace)
        result = verify(repo, namespace, ctx, seq_now, shipped, held())
        if result["is_valid"] or before <= _present(repo, namespace):
            return result
    return result


def _present(repo: Repository, namespace: str) -> set[str]:
    """The target's manifests and `namespace`'s segments (by name)."""
    return {*repo.manifest_ids(), *(f"{aid}/{name.file}" for aid in store.archive_ids(
        repo, namespace) for name in store.list_segments(repo, namespace, aid).segments)}


def verify(repo: Repository, namespace: str, ctx: JobContext | None = None,
           seq_now: int = 0, shipped: Shipped | None = None,
           held: Collection[str] = ()) -> dict[str, Any]:
    errors: list[str] = []
    checked = nbytes = changes = 0
    bases, broken = damaged.bases_and_damaged(repo, namespace)
    all_runs: list[store.Run] = []
    ids = store.archive_ids(repo, namespace)
    every = {aid: store.list_segments(repo, namespace, aid) for aid in ids}
    # the archives under another passphrase (or none): their windows not checked
    foreign = archive_keys.foreign_archives(repo, namespace, every, bases)
    strict = not foreign  # a passphrase error: refused as a whole (it opens nothing)
    ids = [aid for aid in ids if aid not in foreign]
    listings = {aid: every[aid] for aid in ids}
    total = sum(len(x.segments) for x in listings.values())
    if ctx is not None:
        ctx.progress(files_total=total, files_done=0, force=True)
    manifests: dict[str, dict[str, Any] | None] = {}
    replays = _replays(repo, namespace, bases, listings, errors, manifests, seq_now, strict)
    total += sum(len(m["objects"]) for m in manifests.values() if m is not None)
    if ctx is not None:
        # The job reads the segments and its bases' objects: its bytes count
        # both (bytes_done went past a bytes_total left 0: "1491 of 0 bytes").
        ctx.progress(files_total=total, force=True, bytes_total=sum(
            size for x in listings.values() for size in x.sizes.values()) + sum(
            int(o["size"]) for m in manifests.values() if m is not None for o in m["objects"]))
    for aid in ids:
        listing = listings[aid]
        errors += store.stray_problems(aid, listing)
        good = []
        for name in listing.segments:
            if ctx is not None:
                ctx.check_cancelled()
            try:
                header, found, size = store.read_segment(repo, namespace, aid, name)
            except (BackupInvalid, NotFound) as exc:
                if strict and isinstance(exc, PassphraseError):
                    raise  # else: in an archive this passphrase opens, an error
                errors.append(exc.message)
                for r in replays.get((aid, name.file), []):
                    r.broken = True  # the restore stops here: its read error says why
                continue
            for r in replays.get((aid, name.file), []):
                r.feed(name, found, errors)
            checked += 1
            nbytes += size
            changes += header.count
            good.append(name)
            if ctx is not None:
                ctx.progress(files_done=checked, bytes_done=nbytes)
        for r in {id(r): r for name in listing.segments
                  for r in replays.get((aid, name.file), [])}.values():
            r.finish(errors)  # its window's segments are all read
        runs, _ = store.runs_of(aid, good)
        errors += store.runs_of(aid, listing.segments)[1]  # overlaps, as RESTORE finds them
        errors += [pitr.gap_problem(*gap) for gap in pitr.gaps(runs, bases)]  # as RESTORE's
        all_runs += runs
    done, done_bytes = checked, nbytes
    # Each base's objects, what RESTORE copies: an object the bases share is
    # read once (N bases: N^2/2 reads).
    errors += _base_objects(repo, [m for _, m in sorted(manifests.items()) if m is not None],
                            (done, done_bytes), ctx, seq_now)
    for d in broken:  # a base that cannot be read: its window is not restorable
        hit = [r for r in all_runs if damaged.may_base(d, r)]
        if hit:
            errors.append(f"{damaged.why(repo, d)} (it may be a base backup of archive "
                          f"{hit[0].archive_id}, changes from {store.iso(hit[0].after_us)} "
                          f"to {store.iso(hit[0].through_us)})")
    if shipped is not None and shipped.archive_id not in foreign:
        errors += [problem for _, problem in without_base(shipped, all_runs, bases, broken,
                                                          held)]
        if tail := lost_tail(shipped, listings.get(shipped.archive_id), bases):
            errors.append(tail[1])
    if not any(x.segments for x in every.values()):
        errors.append(f"no archived changes of namespace '{namespace}' in target '{repo.uri}'")
    wins = store.windows(all_runs, bases)
    unchecked = archive_keys.not_checked(namespace, every, bases, foreign)
    if unchecked and not wins:
        errors.append(f"no window of namespace '{namespace}' in target '{repo.uri}' was "
                      "checked: " + archive_keys.describe(namespace, unchecked))
    return {
        "namespace": namespace,
        "is_valid": not errors,
        "segments_checked": checked,
        "bytes_checked": nbytes,
        "changes": changes,
        "windows": [{"start_time": store.iso(w.start_us), "end_time": store.iso(w.end_us),
                     "base_backup_id": w.bases[0].backup_id} for w in wins],
        "errors": errors[:MAX_ERRORS],
        "not_checked": unchecked,  # windows of another passphrase (or none)
    }


def without_base(shipped: Shipped, runs: list[store.Run], bases: list[store.Base],
                 broken: list[damaged.Damaged],
                 held: Collection[str] = ()) -> list[tuple[store.Run, str]]:
    """The runs of this server's archive holding the cut of its current
    window's base (the run before a new base ends where the base's run
    starts), with the problem, if no base backup in the target continues any
    of them (the base removed, or its manifest replaced by another backup's):
    no RESTORE as_of reaches their changes. (Another run without a base is
    what a DROP BACKUP of its base leaves until the next prune: the newest
    segment stays while archiving runs, then a new base starts a new run. A
    damaged manifest that may be a base is named already. Nor is an archive a
    restore to a time replays, `held`: the prune leaves a dropped base's run
    to it, storage/archive/holds.py. Nor a run a newer base of the archive,
    cut after it ends, goes on from: a keep_last into the target dropped the
    old base and the prune kept the newest segment, which held its cut.)"""
    if shipped.archive_id in held:
        return []
    cut = shipped.base_lsn
    runs = [r for r in runs if r.archive_id == shipped.archive_id
            and cut is not None and r.after_lsn <= cut <= r.last_lsn
            and not any(b.archive is not None and b.archive.id == r.archive_id
                        and b.archive.lsn >= r.last_lsn and b.snapshot_us >= r.through_us
                        for b in bases)]
    if any(store.is_base(b, r) for r in runs for b in bases):
        return []
    return [(r, f"archive {r.archive_id}: no base backup of its changes from "
                f"{store.iso(r.after_us)} to {store.iso(r.through_us)} is in the target "
                "(removed, or its manifest replaced): they cannot be restored")
            for r in runs if not any(store.is_base(b, r) for b in bases)
            and not any(damaged.may_base(d, r) for d in broken)]


def lost_tail(shipped: Shipped, listing: store.Listing | None,
              bases: list[store.Base]) -> tuple[int, str] | None:
    """This server shipped changes of the archive past its last segment in
    the target (the segments after it were removed), or past the newest cut
    of a base of the archive in the target while it holds no segment of it
    (all removed, or the folder; not when no base of it is left: a stopped
    archive whose base was dropped has its segments pruned): where the
    missing changes start (µs) and the problem, as VERIFY ARCHIVE and SHOW
    RESTORE POINTS say it (pitr.plan refuses a RESTORE after it alike)."""
    until = "" if shipped.us is None else f" (to {store.iso(shipped.us)})"
    head = (f"archive {shipped.archive_id}: this server shipped its changes up to lsn "
            f"{shipped.lsn}{until} into the target, but ")
    if listing is not None and listing.segments:
        last = listing.segments[-1]
        if last.last_lsn >= shipped.lsn:
            return None
        return last.through_us, (
            f"{head}its segments end at {last.file} (lsn {last.last_lsn}, "
            f"{store.iso(last.through_us)}): the changes after it are missing")
    cuts = [b for b in bases if b.archive is not None and b.archive.id == shipped.archive_id]
    base = max(cuts, key=lambda b: (b.archive.lsn if b.archive else 0, b.snapshot_us),
               default=None)
    if base is None or base.archive is None or base.archive.lsn >= shipped.lsn:
        return None
    return base.snapshot_us, (
        f"{head}it holds no segment of the archive: the changes after its base backup "
        f"{base.backup_id} (lsn {base.archive.lsn}, {store.iso(base.snapshot_us)}) are missing")


def lost_rows(namespace: str, shipped: Shipped | None, runs: list[store.Run],
              bases: list[store.Base], broken: list[damaged.Damaged],
              held: Collection[str] = ()) -> list[dict[str, Any]]:
    """SHOW RESTORE POINTS' rows for what VERIFY ARCHIVE finds missing by this
    server's catalog: the run from its current base when no base of it is in
    the target (without_base), and the changes it shipped that the target no
    longer holds (lost_tail), from where they start to how far it shipped;
    `error` as VERIFY ARCHIVE says it."""
    if shipped is None:
        return []
    out = [_row(namespace, r.archive_id, r.after_us, r.through_us, len(r.segments), problem)
           for r, problem in without_base(shipped, runs, bases, broken, held)]
    listing = store.Listing(sorted(s for r in runs if r.archive_id == shipped.archive_id
                                   for s in r.segments))
    if tail := lost_tail(shipped, listing, bases):
        start, problem = tail
        end = start if shipped.us is None else max(start, shipped.us)
        out.append(_row(namespace, shipped.archive_id, start, end, 0, problem))
    return out


def _row(namespace: str, archive_id: str, start_us: int, end_us: int, segments: int,
         problem: str) -> dict[str, Any]:
    return {"namespace": namespace, "start_time": store.iso(start_us),
            "end_time": store.iso(end_us), "base_backup_id": None, "base_backups": 0,
            "segments": segments, "archive_id": archive_id, "error": problem}


@dataclass
class _Replay:
    """What a RESTORE to the end of a window from one of its base backups
    would replay, checked the same way (storage/archive/replay.py) as the
    window's segments are read, no rows kept. A change that RESTORE would
    refuse is an error here too: VERIFY and RESTORE agree."""

    backup_id: str
    base_us: int
    replay: replay.Replay | None
    broken: bool = False

    def feed(self, name: SegmentName, found: list[Entry], errors: list[str]) -> None:
        if self.broken or self.replay is None or name.through_us <= self.base_us or name.empty:
            return
        self.replay.segment = name.file
        try:
            for c in pitr.within(found, self.base_us, MAX_US):
                self.replay.apply(c)
        except BackupInvalid as exc:
            self.refused(exc, errors)

    def finish(self, errors: list[str]) -> None:
        """After the window's last segment: the rows replayed into each
        table, together (Replay.finish)."""
        if self.replay is None:
            return
        try:
            if not self.broken:
                self.replay.finish()
        except BackupInvalid as exc:
            self.refused(exc, errors)
        finally:
            self.replay.close()

    def refused(self, exc: BackupInvalid, errors: list[str]) -> None:
        errors.append(f"restore from base backup {self.backup_id}: {exc.message}")
        self.broken = True


def _base_objects(repo: Repository, bases: list[dict[str, Any]], done: tuple[int, int],
                  ctx: JobContext | None, seq_now: int) -> list[str]:
    """What is wrong with the objects of the base backups `bases` (their
    manifests), as VERIFY BACKUP says it: a RESTORE as_of from one refuses
    exactly these. `done`: the files and bytes the job has read before them.
    In a job process (verify_bases): read in the server, a file that crashed
    the Parquet readers ended the server, and one that took gigabytes to read
    took them there, where a RESTORE's check of it ended only its job process."""
    if not bases:
        return []
    if ctx is None:
        memo: Memo = {}
        found = [verify_objects(repo.store, m, scratch_dir=repo.scratch_dir, seq_now=seq_now,
                                memo=memo).errors for m in bases]
    else:
        keys = [k.key_id for k in repo.store.keyring]
        # Each base by its id and digest: the job process reads it again.
        found = job_call(ctx, repo.target.kind, verify_bases, repo,
                         [(m["backup_id"], manifest_digest(m)) for m in bases], jobproc.WORK,
                         seq_now, done, keys, blame=True)
    return [f"base backup {m['backup_id']}: {e}" for m, errors in zip(bases, found, strict=True)
            for e in errors]


def _replays(repo: Repository, namespace: str, bases: list[store.Base],
             listings: dict[str, store.Listing], errors: list[str],
             manifests: dict[str, dict[str, Any] | None], seq_now: int, strict: bool = True
             ) -> dict[tuple[str, str], list[_Replay]]:
    """For each segment (archive id, file), the replays it feeds: one per
    base backup of each restorable window (by the segments' names, as
    SHOW RESTORE POINTS and RESTORE find them). A base whose manifest RESTORE
    would refuse is an error. `manifests` is filled with each base's
    manifest (None: refused)."""
    runs: list[store.Run] = []
    for aid, listing in listings.items():
        runs += store.runs_of(aid, listing.segments)[0]
    out: dict[tuple[str, str], list[_Replay]] = {}
    for w in store.windows(runs, bases):
        for b in w.bases:
            if b.backup_id not in manifests:
                manifests[b.backup_id] = _base_manifest(repo, b.backup_id, errors, strict)
            m = manifests[b.backup_id]
            tables = None if m is None else m["tables"]
            what = f"archive of namespace '{namespace}'"
            r = _Replay(b.backup_id, b.snapshot_us,
                        None if tables is None else replay.Replay(tables, what, keep_rows=False,
                                                                seq_now=seq_now))
            for name in w.run.segments:
                out.setdefault((w.run.archive_id, name.file), []).append(r)
    return out


def _base_manifest(repo: Repository, backup_id: str, errors: list[str], strict: bool = True
                   ) -> dict[str, Any] | None:
    """A base's manifest as RESTORE reads it (checked and typed), as a dict.
    `strict`: a passphrase error is raised (the passphrase opens no archive
    of the namespace), else it is an error of the base (of an archive it opens)."""
    try:
        m = load(repo.read_manifest(backup_id))
    except (BackupInvalid, NotFound) as exc:
        if strict and isinstance(exc, PassphraseError):
            raise  # else: a base of an archive this passphrase opens, an error
        errors.append(f"base backup {backup_id}: {exc.message}")
        return None
    if m.scope is not None and m.scope.kind == "tables":
        errors.append(f"base backup {backup_id} holds only some tables of the namespace")
        return None
    doc: dict[str, Any] = to_doc(m)
    return doc
