"""A target's archived changes: listing, writing, reading and pruning segments,
and the restorable windows they make with the target's base backups.

Segments live beside the backup repository's objects and manifests, under
`archives/<namespace>/<archive_id>/` (see segment.py). They are written like
manifests (local: temp, fsync, rename, fsync of the folder; S3: one PUT): a
crash leaves a segment whole or absent."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs
from msgspec import UNSET

from catalog.errors import BackupInvalid, CairnError, NotFound
from storage import timetext
from storage.backup import Repository
from storage.backup.atomic import size_held, write_atomic
from storage.backup.layout import CONFIG, join, key_path
from storage.backup.listing import list_folder
from storage.backup.oserrors import reading, writing
from storage.backup.schema import ArchiveRef, load_header

from . import holds, segment
from .blocks import Entry
from .changes import Change
from .segment import ARCHIVE_ID, NAMESPACE, Header, SegmentName, parse_name
from .steps import pace, step

log = logging.getLogger(__name__)

ARCHIVES = "archives"
MAX_SEGMENT_FILE = segment.MAX_HEADER + segment.MAX_BODY + (64 << 20)


def _dir(repo: Repository, *parts: str) -> str:
    return join(repo.target.base, ARCHIVES, *parts)


def _list_dir(repo: Repository, path: str) -> list[pafs.FileInfo]:
    return list_folder(repo.target, path)


def archive_ids(repo: Repository, namespace: str) -> list[str]:
    """The archives of `namespace` in the target (one per START ARCHIVING)."""
    out = []
    for info in _list_dir(repo, _dir(repo, namespace)):
        if info.type == pafs.FileType.Directory and ARCHIVE_ID.match(info.base_name):
            out.append(info.base_name)
    return sorted(out)


def archived_namespaces(repo: Repository) -> list[str]:
    return sorted(i.base_name for i in _list_dir(repo, _dir(repo))
                  if i.type == pafs.FileType.Directory and NAMESPACE.match(i.base_name))


@dataclass
class Listing:
    """One archive's segment names in order; names that are not segments are
    `strays` (reported by VERIFY, never read)."""

    segments: list[SegmentName] = field(default_factory=list)
    sizes: dict[SegmentName, int] = field(default_factory=dict)
    strays: list[str] = field(default_factory=list)


def list_segments(repo: Repository, namespace: str, archive_id: str) -> Listing:
    out = Listing()
    for info in _list_dir(repo, _dir(repo, namespace, archive_id)):
        name = parse_name(info.base_name) if info.type == pafs.FileType.File else None
        if name is None:
            out.strays.append(info.base_name)
            continue
        out.segments.append(name)
        out.sizes[name] = int(info.size or 0)
    out.segments.sort()
    return out


def write_segment(repo: Repository, namespace: str, archive_id: str, changes: list[Change],
                  after_lsn: int, after_us: int, through_us: int) -> tuple[SegmentName, int]:
    """Store the changes (after_lsn, …] committed in (after_us, through_us] as one
    segment; returns its name and stored size."""
    last = changes[-1].lsn if changes else after_lsn
    name = SegmentName(after_lsn, last, after_us, through_us)
    repo.init()
    keys = repo.writer_keys()
    still_there(repo)
    with step("encode"):
        data = segment.encode(namespace, archive_id, name, changes,
                              repo.compression == "zstd", keys)
    return name, _store(repo, namespace, archive_id, name, data)


def write_body(repo: Repository, namespace: str, archive_id: str, name: SegmentName,
               plain: bytes, count: int, version: int = segment.FORMAT_VERSION) -> int:
    """Store a segment whose body (blocks.encode_body of its `count` changes)
    was built elsewhere (the archive helper process): compress, encrypt and
    write it as `write_segment` does. Returns its stored size."""
    repo.init()
    keys = repo.writer_keys()
    still_there(repo)
    with step("encode"):
        data = segment.seal(namespace, archive_id, name, plain, count,
                            repo.compression == "zstd", keys, version)
    return _store(repo, namespace, archive_id, name, data)


def still_there(repo: Repository) -> None:
    """BackupInvalid when the target no longer holds its `config.json`, or
    the key file `repo` encrypts with: the target was emptied (rm -rf, every
    object under the prefix deleted) after `repo` read them, and what it
    writes now would be unreadable (a target without config.json is refused
    as damaged; a segment whose key file is gone cannot be opened). A
    Repository reads both once, so an archiver writing every second went on
    writing into the emptied target, and its next base too. One look (a stat,
    or a HEAD on S3) per segment."""
    paths = [join(repo.target.base, CONFIG)]
    keys = repo.store.write_keys
    if keys is not None:
        paths.append(key_path(repo.target.base, keys.key_id))
    with reading(repo.uri):
        infos = repo.target.fs.get_file_info(paths)
    gone = [p[len(repo.target.base):].lstrip("/") for p, i in zip(paths, infos, strict=True)
            if i.type == pafs.FileType.NotFound]
    if gone:
        raise BackupInvalid(f"backup target '{repo.uri}' no longer holds {' and '.join(gone)} "
                            "(it was emptied or deleted while archiving)")


def _store(repo: Repository, namespace: str, archive_id: str, name: SegmentName,
           data: bytes) -> int:
    path = _dir(repo, namespace, archive_id, name.file)
    pace()
    with step("write"):
        with writing(repo.uri):
            if repo.target.kind == "local":
                repo.target.fs.create_dir(_dir(repo, namespace, archive_id), recursive=True)
        pace()
        write_atomic(repo.target, path, data, repo.durable)
        if repo.target.kind != "local":  # acknowledged is not stored: atomic.size_held
            size_held(repo.target, path, len(data))
    return len(data)


def read_segment(repo: Repository, namespace: str, archive_id: str,
                 name: SegmentName) -> tuple[Header, list[Entry], int]:
    """A segment, checked (segment.decode); BackupInvalid if damaged, NotFound if gone."""
    path = _dir(repo, namespace, archive_id, name.file)
    what = f"archived segment {namespace}/{archive_id}/{name.file}"
    try:
        with reading(repo.uri, what):
            # Its size first: a sparse file of 1.2 GB (4 KB on disk) was read
            # 1 GiB deep, 1.1 GB of RSS, before it was found too large.
            size = repo.target.fs.get_file_info(path).size
        if size is not None and size > MAX_SEGMENT_FILE:
            raise BackupInvalid(f"{what} is corrupt: too large ({size} bytes)")
        with reading(repo.uri, what), repo.target.fs.open_input_stream(path) as f:
            parts = []
            total = 0
            while True:
                part = f.read(1 << 20)
                if not part:
                    break
                total += len(part)
                if total > MAX_SEGMENT_FILE:
                    raise BackupInvalid(f"{what} is corrupt: too large")
                parts.append(bytes(part))
    except CairnError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise NotFound(f"{what} does not exist") from None
        raise
    data = b"".join(parts)
    header, changes = segment.decode(
        data, namespace, archive_id, name,
        lambda key_id: repo.reader_keys(key_id, what), require_key=repo.encrypted)
    return header, changes, len(data)


def written_after(repo: Repository, namespace: str, archive_id: str, listing: Listing,
                  end: tuple[int, int], limit: tuple[int, int]) -> tuple[tuple[int, int], list[str]]:
    """Where the archive really ends when this server recorded it ending at `end`
    (an lsn and a time): after the segments that continue it, one after another,
    and that it can have written itself (a crash after a segment is written and
    before it is recorded leaves one). Each must end at or before `limit` (the
    change log's last lsn and the time now) and read back whole. A name alone is
    never taken on trust: an empty file planted as `…-<2^63>-…-<year 5138>.seg`
    once moved the recorded end there, trimmed the unshipped changes from the log
    and stopped shipping for good while SHOW ARCHIVES said running. Returns the
    end and why any segment after it was not taken."""
    lsn, at = end
    refused: list[str] = []
    while True:
        after = [n for n in listing.segments
                 if (n.after_lsn, n.after_us) == (lsn, at) and (n.last_lsn, n.through_us) != (lsn, at)]
        if not after:
            return (lsn, at), refused
        if len(after) > 1:
            refused.append(f"{len(after)} segments continue {lsn}: " + ", ".join(n.file for n in after))
            return (lsn, at), refused
        name = after[0]
        if name.last_lsn > limit[0] or name.through_us > limit[1]:
            refused.append(f"segment {name.file} ends past what this server has committed "
                           f"(lsn {limit[0]}, time {limit[1]})")
            return (lsn, at), refused
        try:
            read_segment(repo, namespace, archive_id, name)
        except (BackupInvalid, NotFound) as exc:
            refused.append(exc.message)
            return (lsn, at), refused
        lsn, at = name.last_lsn, name.through_us


def delete_segment(repo: Repository, namespace: str, archive_id: str, name: SegmentName) -> None:
    with writing(repo.uri), contextlib.suppress(FileNotFoundError):
        repo.target.fs.delete_file(_dir(repo, namespace, archive_id, name.file))


# --- windows ---------------------------------------------------------------------


@dataclass
class Run:
    """Contiguous segments of one archive: every change of the namespace in
    (after_us, through_us] is in them."""

    archive_id: str
    segments: list[SegmentName]

    @property
    def after_us(self) -> int:
        return self.segments[0].after_us

    @property
    def through_us(self) -> int:
        return self.segments[-1].through_us

    @property
    def after_lsn(self) -> int:
        return self.segments[0].after_lsn

    @property
    def last_lsn(self) -> int:
        return self.segments[-1].last_lsn


@dataclass
class Base:
    """A backup of the namespace in the target, as a possible base of a run.
    `archive` is what its manifest header says (schema.ArchiveRef: the archive
    it is a base of and the lsn its snapshot is exact to; None: of no archive);
    `legacy`: its manifest predates that field, so only its time can say."""

    backup_id: str
    snapshot_us: int
    archive: ArchiveRef | None = None
    legacy: bool = True
    encrypted: bool = False
    server: str | None = None  # the server that wrote it (namespace_record), if known


def is_base(b: Base, run: Run) -> bool:
    """Whether the run's changes continue backup `b`: it names the run's
    archive and its cut lsn is inside the run (the segments go on exactly from
    it), and its snapshot time is inside the run's time. A backup written
    before manifests named their archive is matched by its time alone, as
    Cairn did then (it cannot tell another server's backup from its own)."""
    if not run.after_us <= b.snapshot_us <= run.through_us:
        return False
    if b.legacy:
        return True
    return (b.archive is not None and b.archive.id == run.archive_id
            and run.after_lsn <= b.archive.lsn <= run.last_lsn)


@dataclass
class Window:
    """A restorable window: any instant in [start_us, end_us] (a base backup of
    the run at or before it, then the run's changes)."""

    run: Run
    bases: list[Base]  # oldest first

    @property
    def start_us(self) -> int:
        return self.bases[0].snapshot_us

    @property
    def end_us(self) -> int:
        return self.run.through_us


def runs_of(archive_id: str, listing: list[SegmentName]) -> tuple[list[Run], list[str]]:
    """Split an archive's segments into contiguous runs; the problems found
    (overlaps) are returned with them. A gap between runs is not an error by
    itself (archiving restarted after lost segments takes a new base)."""
    runs: list[Run] = []
    problems: list[str] = []
    for name in listing:
        if runs:
            prev = runs[-1].segments[-1]
            if name.after_lsn == prev.last_lsn and name.after_us == prev.through_us:
                runs[-1].segments.append(name)
                continue
            if name.after_lsn < prev.last_lsn or name.after_us < prev.through_us:
                problems.append(f"archive {archive_id}: segment {name.file} overlaps {prev.file}")
                continue
        runs.append(Run(archive_id, [name]))
    return runs, problems


def windows(runs: list[Run], bases: list[Base]) -> list[Window]:
    """The runs that have a base backup inside them, each with those bases."""
    out = []
    for run in runs:
        mine = sorted((b for b in bases if is_base(b, run)), key=lambda b: b.snapshot_us)
        if mine:
            out.append(Window(run, mine))
    return sorted(out, key=lambda w: (w.start_us, w.end_us))


def bases_of(repo: Repository, namespace: str) -> list[Base]:
    """The namespace's backups in the target, by their public headers (each
    decoded and checked again as its type: a header that fails is skipped)."""
    bases = (_base(m) for m in repo.list_manifests(namespace) if "error" not in m)
    return [b for b in bases if b is not None]


def _base(m: dict[str, Any]) -> Base | None:
    """A manifest's public header as a possible base; None if it fails its checks."""
    try:
        h = load_header(m)
        at = parse_us(h.snapshot_at)
    except (BackupInvalid, ValueError, OverflowError):
        return None
    legacy = h.archive is UNSET
    archive = h.archive if isinstance(h.archive, ArchiveRef) else None
    record = m.get("namespace_record")
    server = record.get("server") if isinstance(record, dict) else None
    return Base(h.backup_id, at, archive, legacy, h.encrypted,
                server if isinstance(server, str) else None)


def stray_problems(archive_id: str, listing: Listing) -> list[str]:
    """The files of an archive's folder that are not segments, as VERIFY
    ARCHIVE reports them and a RESTORE to a time in that archive refuses."""
    return [f"archive {archive_id}: '{s}' is not a segment (a file Cairn did not write; "
            "remove it if it is not needed)" for s in listing.strays]


def listing_problems(archive_id: str, listing: Listing) -> list[str]:
    """What makes a RESTORE to any time in the archive refuse it: files that
    are not segments, segments that overlap (see pitr.plan)."""
    return stray_problems(archive_id, listing) + runs_of(archive_id, listing.segments)[1]


def all_runs(repo: Repository, namespace: str) -> tuple[list[Run], dict[str, list[str]]]:
    """Every archive's runs, and per archive what is wrong with its listing
    (strays, overlaps): a restore from such an archive is refused."""
    runs: list[Run] = []
    problems: dict[str, list[str]] = {}
    for aid in archive_ids(repo, namespace):
        listing = list_segments(repo, namespace, aid)
        r, p = runs_of(aid, listing.segments)
        runs += r
        problems[aid] = stray_problems(aid, listing) + p
    return runs, problems


def base_left(repo: Repository, namespace: str, archive_id: str, since_lsn: int,
              since_us: int, known: str | None = None) -> str | None:
    """A base backup the archive's current window can still start from: one of
    the namespace in the target naming archive `archive_id` with its cut at or
    after `since_lsn`, taken at or after `since_us` (the cut the window began
    at; its segments run contiguously from there), or one written before
    manifests named their archive taken then. `known`, such a backup found
    before, is checked first with a listing only; the manifests are read when
    it is gone. None when there is none (what it ships next would restore
    nothing), or the target's folder is gone (it stayed `failed` on that)."""
    if known is not None and known in repo.manifest_ids():
        return known
    try:
        if not repo.exists():
            return None
    except NotFound:  # a local target's folder is not there
        return None
    return _oldest_from(repo, namespace, archive_id, since_lsn, since_us)


def _continues(b: Base, archive_id: str, since_lsn: int, since_us: int) -> bool:
    """Whether backup `b` is a base the archive's changes after (since_lsn,
    since_us) continue from: its cut there or later, in that archive (or,
    written before manifests named their archive, taken then or later)."""
    return b.snapshot_us >= since_us and (b.legacy or (
        b.archive is not None and b.archive.id == archive_id and b.archive.lsn >= since_lsn))


def _oldest_from(repo: Repository, namespace: str, archive_id: str, since_lsn: int,
                 since_us: int) -> str | None:
    found = [b for b in bases_of(repo, namespace)
             if _continues(b, archive_id, since_lsn, since_us)]
    return min(found, key=lambda b: b.snapshot_us).backup_id if found else None


def base_of_last_run(repo: Repository, namespace: str, archive_id: str,
                     end: tuple[int, int], known: str | None,
                     listing: Listing | None = None) -> str | None:
    """A base backup the changes up to `end` (what this server shipped, as
    (lsn, µs)) continue from: one of the archive whose cut is at or after the
    start of the unbroken run of segments that ends at `end` (walked back
    from it) — `known` if it is one (one manifest read), else the oldest.
    None when there is none, or no segment ends at `end`: a segment lost
    from the middle left the archive `running`, `archived_until` moving on,
    and every change after the gap restorable from no base, until VERIFY
    ARCHIVE was asked."""
    if listing is None:
        listing = list_segments(repo, namespace, archive_id)
    ending = {(n.last_lsn, n.through_us): n for n in listing.segments}
    if end not in ending:
        return None
    at = end
    while at in ending:
        first = ending[at]
        if (first.after_lsn, first.after_us) >= at:
            break
        at = (first.after_lsn, first.after_us)
    since_lsn, since_us = at
    if known is not None:
        try:
            mine = _base(repo.read_manifest(known, require_body=False))
        except CairnError:
            mine = None
        if mine is not None and _continues(mine, archive_id, since_lsn, since_us):
            return known
    return _oldest_from(repo, namespace, archive_id, since_lsn, since_us)


def prune(repo: Repository, namespace: str, keep_newest: Callable[[str], bool]) -> int:
    """Delete archived segments no base backup in the target needs: those of runs
    without a base, and those ending at or before a run's oldest base. The newest
    segment of an archive for which `keep_newest(archive_id)` holds (one still
    running: it is where archiving resumes) always stays. Returns bytes freed.
    Nothing goes while a manifest that may be of `namespace` cannot be read
    (damaged, or listed and not served): it may be any run's base."""
    held, entries = holds.replayed(repo), repo.listing(namespace)  # locks first: holds.py
    if any("error" in m for m in entries):
        return 0
    bases = [b for m in entries if (b := _base(m)) is not None]
    freed = 0
    for aid in [a for a in archive_ids(repo, namespace) if a not in held]:  # held: they stay
        listing = list_segments(repo, namespace, aid)
        if not listing.segments:
            continue
        newest = listing.segments[-1] if keep_newest(aid) else None
        runs, _ = runs_of(aid, listing.segments)
        for run in runs:
            mine = [b.snapshot_us for b in bases if is_base(b, run)]
            floor = min(mine) if mine else None
            for name in run.segments:
                if name == newest:
                    continue
                if floor is None or name.through_us <= floor:
                    delete_segment(repo, namespace, aid, name)
                    freed += listing.sizes.get(name, 0)
    return freed


# --- times ------------------------------------------------------------------------


def parse_us(text: str) -> int:
    """A time of timetext.INSTANT_FORM (no zone: UTC) as µs since the epoch."""
    when = timetext.instant(text)
    if when is None:
        raise ValueError(f"{text!r} is not of the form {timetext.INSTANT_FORM}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(us: int) -> str:
    """Microseconds since the epoch as the contract's ISO-8601 UTC form: whole
    milliseconds as ms, any other time with its microseconds (a backlog's
    piece ends at its last change; floored to the ms, SHOW RESTORE POINTS
    showed an end that missed that change, and RESTORE refused a time that
    restores as "after the newest restorable time", naming an earlier one)."""
    return iso_exact(us)[:-4] + "Z" if us % 1000 == 0 else iso_exact(us)


def iso_exact(us: int) -> str:
    when = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
