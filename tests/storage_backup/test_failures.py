"""A target that cannot take a write fails with a clear 4xx error and leaves no
temp files.

Tests run as root, where chmod 0o500 does not stop writes, so read-only and full
targets are made for real with a read-only bind mount and a 1 MiB tmpfs (root
only, as CI and developers run here). Two portable cases back them up everywhere: a regular
file where the repository expects its tmp/ directory (ENOTDIR, fails for every
user), and a file system that reports ENOSPC part-way through a write."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from catalog.diskerrors import DataDirUnavailable
from catalog.errors import BackupInvalid, InvalidArgument, PermissionDenied
from storage.backup import Repository, Target, resolve_target
from storage.backup.oserrors import reading
from storage.backup.transfer import CHUNK_SIZE
from tests.helpers import no_descriptor_left

from .conftest import MakeFile, manifest_doc, tmp_files
from .faults import faulty_fs


def _run(*args: str) -> bool:
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


def _is_mounted(where: Path) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(where) for line in mounts)


@contextmanager
def mounted(setup: list[list[str]], where: Path) -> Iterator[None]:
    """Run mount commands ending in `where`; fail loudly if mounting is not allowed.
    Whatever happens, everything mounted on `where` is unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.fail("needs root and mount(8) to make a real read-only or full file system")
    where.mkdir(parents=True, exist_ok=True)
    try:
        for command in setup:
            if not _run(*command, str(where)):
                pytest.fail(f"cannot run {' '.join(command)} here")
        yield
    finally:
        for _ in range(5):
            if not _is_mounted(where):
                break
            if not _run("umount", str(where)):
                _run("umount", "-l", str(where))


@pytest.fixture
def readonly_root(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True)
    with mounted([["mount", "--bind", str(root)], ["mount", "-o", "remount,ro,bind"]], root):
        yield root


def test_fresh_target_on_read_only_root(readonly_root: Path, make_file: MakeFile) -> None:
    src = make_file(size=100)
    repo = Repository(resolve_target("new", [str(readonly_root)], {}))
    with pytest.raises(
        PermissionDenied, match=r"cannot write to backup target .*Read-only file system"
    ):
        repo.put_file(src.path)
    assert not (readonly_root / "new").exists()


def test_existing_target_made_read_only(root: Path, make_file: MakeFile) -> None:
    old, new = make_file(size=100), make_file(size=CHUNK_SIZE + 5)
    repo = Repository(resolve_target("t", [str(root)], {}))
    repo.put_file(old.path)
    repo.write_manifest(manifest_doc("bk-1", [old]))
    with mounted([["mount", "--bind", str(root)], ["mount", "-o", "remount,ro,bind"]], root):
        repo = Repository(resolve_target("t", [str(root)], {}))
        with pytest.raises(PermissionDenied, match="Read-only file system"):
            repo.put_file(new.path)
        with pytest.raises(PermissionDenied, match="Read-only file system"):
            repo.write_manifest(manifest_doc("bk-2", [old]))
        # reading still works, and deduplicated puts need no write at all
        assert repo.verify("bk-1", contents=False).is_valid
        assert not repo.put_file(old.path, sha256=old.sha256).written
        assert tmp_files(repo) == []


def test_full_target_leaves_no_temp_file(tmp_path: Path, make_file: MakeFile) -> None:
    root = tmp_path / "small"
    with mounted([["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs"]], root):
        repo = Repository(resolve_target("t", [str(root)], {}))
        src = make_file(size=3 * 1024 * 1024)
        with pytest.raises(InvalidArgument, match=r"\[Errno 28\] No space left on device"):
            repo.put_file(src.path)
        assert tmp_files(repo) == []
        assert repo.list_objects() == {}
        small = make_file(size=1000)  # the space was given back
        assert repo.put_file(small.path).written


def test_file_where_tmp_dir_is_expected(repo: Repository, make_file: MakeFile) -> None:
    repo.init()
    tmp = Path(repo.target.base) / "tmp"
    tmp.rmdir()
    tmp.write_text("in the way")
    # Damage, named (it was InvalidArgument "[Errno 20] Not a directory").
    with pytest.raises(BackupInvalid, match="holds a file at 'tmp' where a folder belongs"):
        repo.put_file(make_file(size=100).path)
    assert repo.list_objects() == {}


def test_target_dir_is_a_file_after_resolution(root: Path, make_file: MakeFile) -> None:
    repo = Repository(resolve_target("t", [str(root)], {}))
    (root / "t").write_text("someone put a file here")
    with pytest.raises(InvalidArgument, match="is a file, not a folder"):
        repo.put_file(make_file(size=10).path)


def test_disk_fills_mid_write(tmp_path: Path, make_file: MakeFile) -> None:
    base = tmp_path / "faulty"
    repo = Repository(
        Target(fs=faulty_fs(write_budget=CHUNK_SIZE), base=str(base), uri=str(base), kind="local")
    )
    src = make_file(size=3 * CHUNK_SIZE)
    with pytest.raises(InvalidArgument, match=r"\[Errno 28\] No space left on device"):
        repo.put_file(src.path)
    assert tmp_files(repo) == []
    assert repo.list_objects() == {}


def test_too_many_open_files_is_unavailable_not_a_bad_backup(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup target read while the server is out of file descriptors
    (EMFILE) was BACKUP_INVALID "cannot read backup target …", and a manifest
    that could not be read so was listed as damaged: the backup may be sound.
    It is 503 UNAVAILABLE "too many open files" (SQLSTATE 53000)."""
    src = make_file(size=100)
    repo.put_file(src.path)
    repo.write_manifest(manifest_doc("bk-1", [src]))
    with pytest.raises(DataDirUnavailable) as info, no_descriptor_left():
        repo.has_manifest("bk-1")  # what a BACKUP checks after recording its backup
    assert info.value.code == "UNAVAILABLE" and info.value.sqlstate == "53000"
    assert info.value.message.startswith(f"cannot read backup target '{repo.uri}': too many "
                                         "open files"), info.value.message
    assert repo.has_manifest("bk-1")

    def short(path: str, *limit: int) -> bytes:  # the manifest's open, as the limit would fail it
        with reading(repo.uri, "manifest"):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), path)

    monkeypatch.setattr(repo, "_read_small", short)
    with pytest.raises(DataDirUnavailable, match="too many open files"):
        repo.list_manifests()
