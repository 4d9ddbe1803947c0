"""Verification: reread every object a backup references and check it.

A report, not an exception: VERIFY BACKUP answers with what is wrong, all of it,
so an operator sees the extent of the damage in one run."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from catalog.errors import BackupInvalid, NotFound

from ..throttle import Throttle
from ..work import Work
from . import crash_marks, footers
from .contents import Capture, Tail, values_problem
from .contents import problem as content_problem
from .objects import ObjectStore
from .schema import FileEntry, TableEntry, load, to_doc
from .seqs import seq_problem
from .transfer import OnBytes, ShouldStop, check_stop

MAX_ERRORS = 100


@dataclass(frozen=True)
class Progress:
    """Where a verify run is; `bytes_done` rises per chunk so a job's fraction moves steadily."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


@dataclass
class VerifyReport:
    backup_id: str
    is_valid: bool
    files_checked: int = 0
    bytes_checked: int = 0
    errors: list[str] = field(default_factory=list)


OnProgress = Callable[[Progress], None]
# Checks one objects entry: None when intact, else what is wrong; feeds its
# content to the Tail.
Checker = Callable[[dict[str, Any], OnBytes, ShouldStop | None, Tail], str | None]
# What earlier manifests' checks found of an object, by the digest of what the
# check reads: the object's entry and, for each file using it, the file's entry
# and its table's name, type, key and schema versions (`_memo_key`).
Memo = dict[bytes, list[str]]
_ENCODE = msgspec.json.Encoder(order="deterministic")


def _memo_key(obj: dict[str, Any], used: list[tuple[FileEntry, TableEntry]],
              tables: dict[int, bytes]) -> bytes:
    """`tables`: each table's digest, made once a manifest (a wide table's
    versions are long)."""
    for _, t in used:
        if id(t) not in tables:
            tables[id(t)] = hashlib.sha256(_ENCODE.encode(
                [t.name, t.table_type, t.primary_key, t.schemas])).digest()
    return hashlib.sha256(_ENCODE.encode(
        [obj, [[f, tables[id(t)]] for f, t in used]])).digest()


def check_in_store(store: ObjectStore) -> Checker:
    def check(obj: dict[str, Any], on_bytes: OnBytes, should_stop: ShouldStop | None,
              tail: Tail) -> str | None:
        return store.check(
            obj["oid"], obj["size"], on_bytes, should_stop, obj.get("sha256"),
            obj.get("plain_size"), tail,
        )

    return check


def verify_objects(
    store: ObjectStore | Checker,
    manifest: dict[str, Any],
    on_progress: OnProgress | None = None,
    should_stop: ShouldStop | None = None,
    contents: bool = True,
    scratch_dir: str | None = None,
    seq_now: int = 0,
    memo: Memo | None = None,
) -> VerifyReport:
    """Check every object of a (decoded, hence well-formed) manifest, in oid order:
    its stored size, and the sha256 of its bytes (raw) or of its decoded content,
    every encrypted frame authenticating (encoded); then the content of every
    intact object against the files that use it (contents.py, as RESTORE does:
    the footer, then the values; the content is kept for them in memory or,
    past a few MiB, in a temporary file under `scratch_dir`). A backup whose row
    versions a restore on a server at sequence `seq_now` would refuse is reported
    as the restore refuses it (seqs.py). `memo`, shared by the checks of several
    manifests (VERIFY ARCHIVE's base backups, which share most objects): an
    object checked before for the same files is not read again, its findings
    are repeated."""
    check = check_in_store(store) if isinstance(store, ObjectStore) else store
    typed = load(manifest)
    users: dict[str, list[tuple[FileEntry, TableEntry]]] = {}
    for t in typed.tables if contents else []:
        for f in t.files:
            users.setdefault(f.content_sha256, []).append((f, t))
    objects: list[dict[str, Any]] = manifest["objects"]
    files_total = len(objects)
    bytes_total = sum(o["size"] for o in objects)
    report = VerifyReport(manifest["backup_id"], is_valid=True)
    done_before = 0  # bytes of the objects already finished, counted at their expected size
    in_object = 0
    in_size = 0  # the size of the object being read

    def on_bytes(n: int) -> None:
        nonlocal in_object
        in_object += n
        report.bytes_checked += n
        if on_progress is not None:
            # An object read again (its copier died mid-object) counts its size once.
            at = done_before + min(in_object, in_size)
            on_progress(Progress(report.files_checked, files_total, at, bytes_total))

    errors: list[str] = []
    digests: dict[int, bytes] = {}
    if (wrong := seq_problem(typed.backup_id, typed.max_seq, seq_now)) is not None:
        errors.append(wrong)
    last = crash_marks.ahead(typed.backup_id, ())
    if isinstance(store, ObjectStore) and crash_marks.ahead(typed.backup_id, users) < last:
        # Their objects first (crash_marks.py); an archive target's are read in its order.
        # (`users` is by content digest: an object's own digest is its files')
        objects = sorted(objects, key=lambda o: crash_marks.ahead(
            typed.backup_id, [o.get("sha256") or o["oid"]]))
    for obj in objects:
        check_stop(should_stop)
        in_object, in_size = 0, obj["size"]
        used = users.get(obj.get("sha256") or obj["oid"], [])
        key = None if memo is None else _memo_key(obj, used, digests)
        if key is not None and memo is not None and key in memo:
            errors += memo[key]
        else:
            found, intact = _check_object(store, check, obj, used, on_bytes, should_stop,
                                          scratch_dir, typed.backup_id)
            # Intact: exactly its size was read. A copier killed mid-object had
            # its bytes counted before the read began again here: bytes_checked
            # (and the job's bytes) went past the backup's. Damaged: no more
            # than its size (the read again found the mismatch all the same).
            report.bytes_checked += (obj["size"] - in_object if intact
                                     else -max(0, in_object - obj["size"]))
            errors += found
            if key is not None and memo is not None:
                memo[key] = found
        report.files_checked += 1
        done_before += obj["size"]
        if on_progress is not None:
            on_progress(Progress(report.files_checked, files_total, done_before, bytes_total))
    if len(errors) > MAX_ERRORS:
        errors = [*errors[:MAX_ERRORS], f"... and {len(errors) - MAX_ERRORS} more errors"]
    report.errors = errors
    report.is_valid = not errors
    return report


def _check_object(store: ObjectStore | Checker, check: Checker, obj: dict[str, Any],
                  used: list[tuple[FileEntry, TableEntry]], on_bytes: OnBytes,
                  should_stop: ShouldStop | None, scratch_dir: str | None,
                  backup_id: str = "") -> tuple[list[str], bool]:
    """What is wrong with one object: as stored, then its content for the files
    using it; and whether it is intact as stored (its bytes all read)."""
    tail = Capture(scratch_dir, footers.tail_for(used)) if used else Tail(0)
    try:
        with crash_marks.doing(f"object {obj['oid']} of backup '{backup_id}'"):
            problem = check(obj, on_bytes, should_stop, tail)
        if problem is not None:
            return [problem], False
        if isinstance(tail, Capture):  # files use it
            return _content_problems(store, obj, tail, used, backup_id), True
        return [], True
    finally:
        tail.close()


def _content_problems(store: ObjectStore | Checker, obj: dict[str, Any], tail: Capture,
                      used: list[tuple[FileEntry, TableEntry]], backup_id: str) -> list[str]:
    """What is wrong with an intact object's content for the files that use it
    (one its job process died on each time it read it: crash_marks.py)."""
    out = []
    last = tail.bytes()
    for f, t in used:
        wrong = crash_marks.blamed(backup_id, f.content_sha256,
                                   f"file {f.content_sha256} of table '{t.name}'")
        if wrong is not None:
            out.append(wrong)
            continue
        with crash_marks.reading(backup_id, f.content_sha256):
            wrong = _file_problem(store, obj, tail, last, f, t)
        if wrong is not None:
            out.append(wrong)
    return out


def _file_problem(store: ObjectStore | Checker, obj: dict[str, Any], tail: Capture,
                  last: bytes, f: FileEntry, t: TableEntry) -> str | None:
    wrong = content_problem(last, f, t)
    if wrong is None:
        content = tail.content()
        if content is not None:
            wrong = values_problem(content, f, t)
        elif isinstance(store, ObjectStore):  # a copier read it: a local raw object
            with store.open_local(obj["oid"]) as local:
                wrong = values_problem(local, f, t)
    return wrong


def verify_backup_of(repo: Any, backup_id: str, work: Work,
                     spent: Callable[[int], None] | None = None,
                     seq_now: int = 0, blamed: frozenset[str] = frozenset(),
                     first: tuple[str, ...] = (), rate: float = 0) -> VerifyReport:
    """VERIFY BACKUP's work on a Repository, reporting to the job's `work`
    (what a job process runs: storage/jobproc.py); `spent` is told the bytes
    read (a throttle's, as write_backup's), or a Throttle of `rate` bytes a
    second made here is (a throttled VERIFY read in the server until
    2026-12-07: a file that crashed the Parquet readers ended the server).
    The files of `blamed` are not read: their job process died on each
    (crash_marks.py); those of `first` are read before the others."""
    last = 0
    if rate > 0 and spent is None:
        spent = Throttle(rate, lambda: work.cancelled).spent

    def on_progress(p: Progress) -> None:
        nonlocal last
        work.progress(files_done=p.files_done, files_total=p.files_total,
                      bytes_done=p.bytes_done, bytes_total=p.bytes_total)
        work.fault("verify.mid_object", bytes_done=p.bytes_done)
        work.give_way()  # per chunk, as BACKUP and RESTORE: statements first
        if spent is not None:
            spent(max(0, p.bytes_done - last))
            last = p.bytes_done

    with crash_marks.marking(work, blamed, first):
        return repo.verify(backup_id, on_progress=on_progress,  # type: ignore[no-any-return]
                           should_stop=lambda: work.cancelled, seq_now=seq_now)


def manifest_digest(doc: dict[str, Any]) -> str:
    """Which decoded manifest `doc` is (a base's, as VERIFY ARCHIVE's server
    read it and its job process reads it again: verify_bases)."""
    return hashlib.sha256(msgspec.msgpack.encode(doc)).hexdigest()


def verify_bases(repo: Any, bases: list[tuple[str, str]], work: Work, seq_now: int,
                 done: tuple[int, int], key_ids: list[str],
                 blamed: frozenset[str] = frozenset(),
                 first: tuple[str, ...] = ()) -> list[list[str]]:
    """VERIFY ARCHIVE's check of its base backups' objects, each as VERIFY
    BACKUP checks one; what is wrong with each. In a job process
    (storage/jobproc.py), as VERIFY BACKUP and a RESTORE's check run: the
    Parquet readers' memory, and a file that crashes them, are that
    process's, not the server's. `bases`: (backup id, manifest_digest of the
    manifest the server checked), each manifest read here again, one at a
    time, as VERIFY BACKUP reads its own: the server sent them all in one
    pickle (~1 s of its GIL held, no statement running, for a 32 MiB
    manifest, and every base's whole manifest in this process at once for
    the call). One not the same now (re-sealed, or dropped beside: the
    server's `settled` runs again) is an error of its base. An object the
    bases share (with the same files) is read once (verify_objects' memo).
    `done`: the files and bytes the job read before; `key_ids`: the keys the
    server opened for them (a pickled Repository carries none: keyring.py).
    A base with a file of `first` is read before the others (crash_marks.py:
    a file of one base read after another base's, by the same readers)."""
    for key_id in key_ids:
        repo._open_key(key_id, bases[0][0])
    memo: Memo = {}
    files, nbytes = done
    out: list[list[str]] = [[] for _ in bases]
    # Each base where its first file to read first comes (storage/jobblame.py).
    rank = {crash_marks.backup_of(k): i for i, k in reversed(list(enumerate(first)))}
    with crash_marks.marking(work, blamed, first):
        for at in sorted(range(len(bases)), key=lambda i: rank.get(bases[i][0], len(first))):
            backup_id, digest = bases[at]
            try:
                m = to_doc(load(repo.read_manifest(backup_id)))
            except (BackupInvalid, NotFound) as exc:
                out[at] = [exc.message]
                continue
            if manifest_digest(m) != digest:
                out[at] = ["its manifest changed while the archive was verified"]
                continue

            def progress(p: Progress, at: tuple[int, int] = (files, nbytes)) -> None:
                work.progress(files_done=at[0] + p.files_done, bytes_done=at[1] + p.bytes_done)

            report = verify_objects(repo.store, m, progress, lambda: work.cancelled,
                                    scratch_dir=repo.scratch_dir, seq_now=seq_now, memo=memo)
            out[at] = report.errors
            files += len(m["objects"])
            nbytes += sum(int(o["size"]) for o in m["objects"])
            del m
    return out
