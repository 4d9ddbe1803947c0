"""Objects: content addressing, dedup, streaming with progress and cancellation,
and refusing to hand back corrupt bytes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from catalog.errors import BackupInvalid, Cancelled, InvalidArgument, Unavailable
from storage.backup import Repository, Target, nofollow, objects, resolve_target
from storage.backup.layout import process_tag, temp_path, temp_tag
from storage.backup.transfer import CHUNK_SIZE

from .conftest import MakeFile, backup_doc, object_file, stored_as, table_doc, tmp_files


def test_put_file_stores_object_named_by_sha256(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=3 * CHUNK_SIZE + 17)
    result = repo.put_file(src.path)
    assert (result.oid, result.size, result.written) == (src.sha256, src.size, True)
    assert object_file(repo, src.sha256).read_bytes() == src.data
    assert repo.has_object(src.sha256)
    assert repo.list_objects() == {src.sha256: src.size}
    assert tmp_files(repo) == []


def test_second_put_is_deduplicated(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=5000)
    repo.put_file(src.path)
    mtime = object_file(repo, src.sha256).stat().st_mtime_ns
    again = repo.put_file(src.path)
    assert (again.oid, again.written) == (src.sha256, False)
    assert object_file(repo, src.sha256).stat().st_mtime_ns == mtime
    assert tmp_files(repo) == []


def test_known_sha256_skips_reading_the_file(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=5000)
    repo.put_file(src.path)
    os.unlink(src.path)  # any attempt to read it would now fail
    seen: list[int] = []
    result = repo.put_file(src.path, sha256=src.sha256, size=src.size, on_bytes=seen.append)
    assert (result.oid, result.size, result.written) == (src.sha256, src.size, False)
    assert seen == [src.size]  # progress still advances by the file's size


def test_same_content_in_other_files_and_backups_is_one_object(
    repo: Repository, make_file: MakeFile
) -> None:
    data = os.urandom(2048)
    a, b = make_file(data=data, name="ns1.parquet"), make_file(data=data, name="ns2.parquet")
    c = make_file(data=data + b"!")
    assert repo.put_file(a.path).written
    assert not repo.put_file(b.path).written
    assert repo.put_file(c.path).oid != a.sha256
    assert len(repo.list_objects()) == 2


def test_put_bytes(repo: Repository) -> None:
    first = repo.put_bytes(b'{"table": "t"}')
    assert first.oid == hashlib.sha256(b'{"table": "t"}').hexdigest() and first.written
    assert not repo.put_bytes(b'{"table": "t"}').written
    assert tmp_files(repo) == []


def test_empty_file(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(data=b"")
    assert repo.put_file(src.path).oid == hashlib.sha256(b"").hexdigest()
    out = Path(src.path + ".back")
    repo.read_object_to(src.sha256, str(out), 0)
    assert out.read_bytes() == b""


def test_progress_counts_every_byte(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=2 * CHUNK_SIZE + 5)
    seen: list[int] = []
    repo.put_file(src.path, on_bytes=seen.append)
    assert sum(seen) == src.size and len(seen) == 3


def test_wrong_claimed_sha256_stores_nothing(repo: Repository, make_file: MakeFile) -> None:
    src, other = make_file(size=100), make_file(size=100)
    with pytest.raises(BackupInvalid, match="changed while being backed up"):
        repo.put_file(src.path, sha256=other.sha256)
    with pytest.raises(BackupInvalid, match="size 100, expected 99"):
        repo.put_file(src.path, size=99)
    assert repo.list_objects() == {}
    assert tmp_files(repo) == []


def test_invalid_oid_is_refused(repo: Repository, make_file: MakeFile) -> None:
    src = make_file()
    for bad in ("../../etc/passwd", "ABC", "0" * 63, src.sha256.upper()):
        with pytest.raises(InvalidArgument):
            repo.put_file(src.path, sha256=bad)
        with pytest.raises(InvalidArgument):
            repo.has_object(bad)


def test_damaged_object_is_rewritten_not_trusted(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=4096)
    repo.put_file(src.path)
    path = object_file(repo, src.sha256)
    path.write_bytes(src.data[:100])  # truncated by some accident
    result = repo.put_file(src.path, sha256=src.sha256, size=src.size)
    assert result.written and path.read_bytes() == src.data


@pytest.mark.parametrize("damage", ["cut short", "a byte more"])
def test_a_damaged_compressed_object_is_stored_again_not_trusted(
        root: Path, make_file: MakeFile, damage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compressed object's size says nothing of its content (any size may be
    right), so one found for a BACKUP is checked by its zstd headers (where
    its frames end): cut short or grown, it is stored again (a BACKUP over it
    used to complete while VERIFY and RESTORE of it failed), and the new
    backup verifies. An intact one is not reread for that."""
    zrepo = Repository(resolve_target("main", [str(root)], {}), compression="zstd")
    src = make_file(data=b"compressible " * 4000)
    first = zrepo.put_file(src.path, sha256=src.sha256, size=src.size)
    assert first.oid != src.sha256  # stored zstd
    zrepo.write_manifest(backup_doc("bk-1", [stored_as(table_doc("t", [src]), [first])]))
    path = object_file(zrepo, first.oid)
    good = path.read_bytes()
    path.write_bytes(good[:10] if damage == "cut short" else good + b"\0")
    assert not zrepo.verify("bk-1", contents=False).is_valid
    assert zrepo.find_contents([(src.sha256, src.size)]) == [None]
    again = zrepo.put_file(src.path, sha256=src.sha256, size=src.size)
    assert again.written and again.oid == first.oid and path.read_bytes() == good

    def reread(*_: Any, **__: Any) -> None:
        raise AssertionError("an intact compressed object was reread")

    monkeypatch.setattr(objects.ObjectStore, "check", reread)
    assert zrepo.find_contents([(src.sha256, src.size)])[0][0].oid == first.oid  # type: ignore[index]
    monkeypatch.undo()
    zrepo.write_manifest(backup_doc("bk-2", [stored_as(table_doc("t", [src]), [again])]))
    assert zrepo.verify("bk-2", contents=False).is_valid
    assert zrepo.verify("bk-1", contents=False).is_valid  # the same object, whole again


def test_cancel_mid_put_leaves_nothing(repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=3 * CHUNK_SIZE)
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        repo.put_file(src.path, should_stop=lambda: next(calls) >= 2)
    assert repo.list_objects() == {}
    assert tmp_files(repo) == []


def test_cancel_before_start(repo: Repository, make_file: MakeFile) -> None:
    src = make_file()
    with pytest.raises(Cancelled):
        repo.put_file(src.path, should_stop=lambda: True)
    assert repo.list_objects() == {}


# --- reading back --------------------------------------------------------------


def test_read_object_to_round_trip(repo: Repository, make_file: MakeFile, tmp_path: Path) -> None:
    src = make_file(size=2 * CHUNK_SIZE + 1)
    repo.put_file(src.path)
    out = tmp_path / "restored"
    seen: list[int] = []
    repo.read_object_to(src.sha256, str(out), src.size, on_bytes=seen.append)
    assert out.read_bytes() == src.data and sum(seen) == src.size
    with repo.open_object(src.sha256) as stream:
        assert stream.read() == src.data


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_read_object_to_refuses_flipped_byte(
    repo: Repository, make_file: MakeFile, tmp_path: Path
) -> None:
    src = make_file(size=CHUNK_SIZE + 1000)
    repo.put_file(src.path)
    flip_byte(object_file(repo, src.sha256), src.size - 1)
    out = tmp_path / "restored"
    with pytest.raises(BackupInvalid, match=f"object {src.sha256} is corrupt: sha256 mismatch"):
        repo.read_object_to(src.sha256, str(out), src.size)
    assert not out.exists()


def test_read_object_to_refuses_truncated_and_missing(
    repo: Repository, make_file: MakeFile, tmp_path: Path
) -> None:
    src = make_file(size=1000)
    repo.put_file(src.path)
    out = tmp_path / "restored"
    with pytest.raises(BackupInvalid, match="size 1000, expected 1001"):
        repo.read_object_to(src.sha256, str(out), 1001)
    object_file(repo, src.sha256).write_bytes(src.data[:10])
    with pytest.raises(BackupInvalid, match="is corrupt: size 10, expected 1000"):
        repo.read_object_to(src.sha256, str(out), src.size)
    object_file(repo, src.sha256).unlink()
    with pytest.raises(BackupInvalid, match=f"object {src.sha256} is missing"):
        repo.read_object_to(src.sha256, str(out), src.size)
    with pytest.raises(BackupInvalid, match="is missing"):
        repo.open_object(src.sha256)
    assert not out.exists()


def test_cancel_mid_read_removes_partial_file(
    repo: Repository, make_file: MakeFile, tmp_path: Path
) -> None:
    src = make_file(size=3 * CHUNK_SIZE)
    repo.put_file(src.path)
    out = tmp_path / "restored"
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        repo.read_object_to(src.sha256, str(out), src.size, should_stop=lambda: next(calls) >= 2)
    assert not out.exists()


# --- housekeeping --------------------------------------------------------------


def test_list_objects_ignores_strays(repo: Repository, make_file: MakeFile) -> None:
    src = make_file()
    repo.put_file(src.path)
    objects = Path(repo.target.base) / "objects"
    (objects / "zz").mkdir()
    (objects / "zz" / "notes.txt").write_text("x")
    # A name whose first two digits are not its folder's (when the file's own
    # hash began "ff", one run in 256, "f" * 64 was filed right and listed).
    other = next(c for c in "0f" if c * 2 != src.sha256[:2])
    (objects / src.sha256[:2] / (other * 64)).write_text("misfiled")
    assert repo.list_objects() == {src.sha256: src.size}


def test_list_objects_takes_no_key_deeper_down_for_an_object(
    repo: Repository, make_file: MakeFile
) -> None:
    """`objects/<aa>/<aa>/<oid>` is not object <oid> (`objects/<aa>/<oid>`): it
    was listed as one, and a prune counted and "deleted" what is not there."""
    src = make_file()
    repo.put_file(src.path)
    shard = Path(repo.target.base) / "objects" / src.sha256[:2]
    (shard / src.sha256[:2]).mkdir()
    other = src.sha256[:2] + "0" * 62
    (shard / src.sha256[:2] / other).write_text("not an object")
    (shard / src.sha256[:2] / src.sha256).write_text("nor this")
    assert repo.list_objects() == {src.sha256: src.size}


def test_remove_tmp(repo: Repository) -> None:
    repo.init()
    tmp = Path(repo.target.base) / "tmp"
    tmp.mkdir(exist_ok=True)
    old_name, fresh_name = "a" * 32 + ".tmp", "b" * 32 + ".tmp"  # names temp_path gives
    (tmp / old_name).write_bytes(b"x")
    old = time.time() - 3600
    os.utime(tmp / old_name, (old, old))
    (tmp / fresh_name).write_bytes(b"y")
    (tmp / "notes.txt").write_bytes(b"not Cairn's: never removed")
    assert repo.remove_tmp(older_than_seconds=600) == 1
    assert tmp_files(repo) == [fresh_name, "notes.txt"]
    assert repo.remove_tmp() == 1
    assert tmp_files(repo) == ["notes.txt"]


def test_remove_tmp_of_one_writer(repo: Repository) -> None:
    """`writer`'s own temp files go at any age; others' only when old enough
    (another server sharing the target may be writing them now)."""
    repo.init()
    tmp = Path(repo.target.base) / "tmp"
    tmp.mkdir(exist_ok=True)
    mine, theirs, untagged = ("1" * 16 + "-" + "a" * 32 + ".tmp",
                              "2" * 16 + "-" + "b" * 32 + ".tmp", "c" * 32 + ".tmp")
    for name in (mine, theirs, untagged):
        (tmp / name).write_bytes(b"x")
    assert repo.remove_tmp(older_than_seconds=600, writer="1" * 16) == 1
    assert tmp_files(repo) == [theirs, untagged]


def test_remove_tmp_spares_the_files_of_running_processes(repo: Repository) -> None:
    """A temp file's name carries its process's tag after the writer; the
    writer's own files go but those whose tag `spare` says runs (a job of the
    same server writing into the target now)."""
    repo.init()
    tmp = Path(repo.target.base) / "tmp"
    tmp.mkdir(exist_ok=True)
    running = Path(temp_path(repo.target.base, "1" * 16)).name
    assert running.startswith("1" * 16 + "-" + process_tag()) and temp_tag(running) == process_tag()
    dead = "1" * 16 + "-" + "a" * 32 + ".tmp"
    for name in (running, dead):
        (tmp / name).write_bytes(b"x")
    assert repo.remove_tmp(600, "1" * 16, {process_tag()}.__contains__) == 1
    assert tmp_files(repo) == [running]


def test_remove_tmp_judges_another_servers_file_by_the_stores_clock(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This server's clock runs two days ahead: a file another server is
    writing now (fresh by the store's clock) is not a day old, and stays."""
    repo.init()
    tmp = Path(repo.target.base) / "tmp"
    tmp.mkdir(exist_ok=True)
    theirs = "2" * 16 + "-" + "b" * 32 + ".tmp"
    (tmp / theirs).write_bytes(b"x")
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + 2 * 86400 * 10**9)
    assert repo.remove_tmp(older_than_seconds=86400, writer="1" * 16) == 0
    assert tmp_files(repo) == [theirs]
    old = real() / 1e9 - 2 * 86400
    os.utime(tmp / theirs, (old, old))  # really two days old: it goes
    assert repo.remove_tmp(older_than_seconds=86400, writer="1" * 16) == 1


def test_a_temp_file_removed_under_a_write_is_named(
    repo: Repository, make_file: MakeFile
) -> None:
    """Another server's clean-up of `tmp/` removed a file being written: the
    error said "cannot write to backup target …: No such file or directory",
    as if the target were missing."""
    repo.init()
    src = make_file(size=3 * 1024 * 1024)

    def swept(n: int) -> None:
        for leftover in (Path(repo.target.base) / "tmp").iterdir():
            leftover.unlink()

    with pytest.raises(Unavailable, match=r"was removed before it was complete.*try again"):
        repo.put_file(src.path, on_bytes=swept)
    assert repo.list_objects() == {}


# --- the object-storage code path (PUT to the final key), run on local disk ---


@pytest.fixture
def direct_repo(tmp_path: Path) -> Repository:
    base = tmp_path / "fake-s3"
    base.mkdir()
    return Repository(
        Target(fs=pafs.LocalFileSystem(), base=str(base), uri="s3://fake/base", kind="s3")
    )


def test_direct_put_dedup_and_read(direct_repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=CHUNK_SIZE + 3)
    first = direct_repo.put_file(src.path)
    assert (first.oid, first.written) == (src.sha256, True)
    assert not direct_repo.put_file(src.path).written
    assert not direct_repo.put_file(src.path, sha256=src.sha256).written
    assert object_file(direct_repo, src.sha256).read_bytes() == src.data
    assert tmp_files(direct_repo) == []


def test_direct_put_cancel_leaves_no_object(direct_repo: Repository, make_file: MakeFile) -> None:
    src = make_file(size=3 * CHUNK_SIZE)
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        direct_repo.put_file(src.path, sha256=src.sha256, should_stop=lambda: next(calls) >= 2)
    assert direct_repo.list_objects() == {}


def test_direct_put_cut_short_never_touches_the_stored_object(
    direct_repo: Repository, make_file: MakeFile
) -> None:
    """Two servers storing the same content: one finished, the other (which
    looked before it finished) is cancelled mid-upload. Its upload went to
    `tmp/`, so the finished object stays whole, and nothing is left in tmp/."""
    src = make_file(size=3 * CHUNK_SIZE)
    assert direct_repo.put_file(src.path, sha256=src.sha256, size=src.size).written
    late = Repository(direct_repo.target, compression="none")
    late.store.find = lambda *_: None  # type: ignore[method-assign]  # it looked too early
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        late.put_file(src.path, sha256=src.sha256, size=src.size,
                      should_stop=lambda: next(calls) >= 2)
    assert direct_repo.list_objects() == {src.sha256: src.size}
    assert direct_repo.store.check(src.sha256, src.size) is None
    # Finished after the other: dropped, not copied over it.
    again = late.put_file(src.path, sha256=src.sha256, size=src.size)
    assert not again.written and direct_repo.store.check(src.sha256, src.size) is None
    assert tmp_files(direct_repo) == []


def test_put_bytes_on_a_compressing_store_finds_stored_content_without_a_file(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Content a compressing store holds already (in any form) is found from
    memory: no temporary file is made for it (a BACKUP's small exports are
    stored from memory, and most are unchanged since the last BACKUP)."""
    zrepo = Repository(resolve_target("main", [str(root)], {}), compression="zstd")
    data = b"x" * 5000  # compressible: stored zstd, under a name apart from its sha256
    first = zrepo.put_bytes(data)
    assert first.written and first.sha256 == hashlib.sha256(data).hexdigest()

    def no_file(*_: object, **__: object) -> None:
        raise AssertionError("a temporary file was made for stored content")

    monkeypatch.setattr(objects.tempfile, "NamedTemporaryFile", no_file)
    again = zrepo.put_bytes(data)
    assert (again.oid, again.size, again.written, again.sha256, again.plain_size) == (
        first.oid, first.size, False, first.sha256, len(data))
    with pytest.raises(AssertionError, match="temporary file"):
        zrepo.put_bytes(b"y" * 5000)  # new content still goes through one


def test_find_contents_opens_each_directory_once(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many contents looked up at once (a backup's files before any is
    stored): the target, `objects/` and each shard opened once for all of
    them, each content found with its size, a missing or short one not."""
    stored = [make_file(size=100 + i) for i in range(6)]
    for s in stored:
        repo.put_file(s.path, s.sha256, s.size)
    absent = make_file(size=50)
    short = stored[0]
    object_file(repo, short.sha256).write_bytes(short.data[:-1])  # cut short
    opened: list[str] = []
    held: set[int] = set()
    most = [0]
    real_open, real_close = nofollow.os.open, nofollow.os.close

    def counting(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        fd = real_open(path, *args, **kwargs)
        held.add(fd)
        most[0] = max(most[0], len(held))
        return fd

    def closing(fd: int) -> None:
        held.discard(fd)
        real_close(fd)

    monkeypatch.setattr(nofollow.os, "open", counting)
    monkeypatch.setattr(nofollow.os, "close", closing)
    found = repo.find_contents([(s.sha256, s.size) for s in stored] + [(absent.sha256, 50)])
    assert found is not None
    assert found[0] is None and found[-1] is None
    assert [(f[0].oid, f[1]) for f in found[1:-1] if f is not None] == [
        (s.sha256, s.size) for s in stored[1:]]
    shards = {s.sha256[:2] for s in stored} | {absent.sha256[:2]}
    assert len(opened) <= 2 + len(shards)  # the target, objects/, each shard once
    assert opened.count("objects") == 1
    assert most[0] == 3 and not held  # never more than one path's directories open


def test_compressed_objects_found_are_checked_by_their_headers_in_one_pass(
        root: Path, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zstd objects a BACKUP finds are checked by their headers, each
    directory on the way opened once for all of them (as their stat), none
    reread; a cut one among them is not found."""
    zrepo = Repository(resolve_target("main", [str(root)], {}), compression="zstd")
    srcs = [make_file(data=f"compressible {i} ".encode() * 3000) for i in range(8)]
    puts = [zrepo.put_file(s.path, sha256=s.sha256, size=s.size) for s in srcs]
    assert all(p.oid != s.sha256 for p, s in zip(puts, srcs, strict=True))  # all zstd
    cut = object_file(zrepo, puts[3].oid)
    cut.write_bytes(cut.read_bytes()[:-1])
    opened: list[str] = []
    real_open = nofollow.os.open

    def counting(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    def reread(*_: Any, **__: Any) -> None:
        raise AssertionError("a compressed object was reread")

    monkeypatch.setattr(nofollow.os, "open", counting)
    monkeypatch.setattr(objects.ObjectStore, "check", reread)
    found = zrepo.find_contents([(s.sha256, s.size) for s in srcs])
    assert found is not None
    assert [None if f is None else f[0].oid for f in found] == [
        None if i == 3 else p.oid for i, p in enumerate(puts)]
    assert opened.count("objects") == 2  # the names' stat, then the headers' pass


def test_a_sweep_while_running_takes_only_the_tags_it_saw_end(repo: Repository) -> None:
    """After a failed job the server swept `tmp/` of every file of its writer
    id whose process did not run, so a server sharing that id (two
    containers: the same host name and data dir path) lost the file it was
    writing, and its BACKUP failed. A sweep while the server runs (`only`)
    takes the files of the processes it saw end, and nothing else."""
    repo.init()
    tmp = Path(repo.target.base) / "tmp"
    tmp.mkdir(exist_ok=True)
    ended = "1" * 16 + "-" + "e" * 8 + "a" * 24 + ".tmp"
    twin = "1" * 16 + "-" + "f" * 8 + "b" * 24 + ".tmp"  # same writer id, another server
    other = "2" * 16 + "-" + "e" * 8 + "c" * 24 + ".tmp"  # another writer, the tag alike
    for name in (ended, twin, other):
        (tmp / name).write_bytes(b"x")
        old = time.time() - 3600
        os.utime(tmp / name, (old, old))
    assert repo.remove_tmp(None, "1" * 16, only={"e" * 8}.__contains__) == 1
    assert tmp_files(repo) == [twin, other]
