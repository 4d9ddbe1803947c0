"""Kernel-side copies (storage/backup/fastcopy.py): every way of copying
(copy_file_range, sendfile, pread/pwrite) stores the same bytes and hashes
them as stored; a way the kernel refuses steps down to the next; a copy that
lands wrong is caught by the hash; and a local restore or backup through it
still refuses what does not match."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from catalog.errors import BackupInvalid, Cancelled
from storage.backup import fastcopy
from storage.backup.repository import Repository
from storage.backup.transfer import CHUNK_SIZE

from .conftest import MakeFile, object_file


def _copy(src: Path, dst: Path, mode: str | None = None) -> tuple[int, str, list[int]]:
    seen: list[int] = []
    digest = hashlib.sha256()
    s = os.open(src, os.O_RDONLY)
    d = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        copier = fastcopy._Copier(s, d)
        if mode is not None:
            copier.mode = mode
        original = fastcopy._Copier
        fastcopy._Copier = lambda *_: copier  # type: ignore[misc, assignment]
        try:
            n = fastcopy.copy_checked(s, d, digest, seen.append)
        finally:
            fastcopy._Copier = original  # type: ignore[misc]
    finally:
        os.close(s)
        os.close(d)
    return n, digest.hexdigest(), seen


@pytest.mark.parametrize("mode", ["copy_file_range", "sendfile", "pwrite"])
@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE + 5, fastcopy.STEP + 3])
def test_every_way_copies_and_hashes_the_same(tmp_path: Path, mode: str, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    n, sha, seen = _copy(tmp_path / "src", tmp_path / "dst", mode)
    assert n == size == sum(seen)
    assert sha == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dst").read_bytes() == data
    assert all(k <= CHUNK_SIZE for k in seen)


def test_refused_ways_step_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> int:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    monkeypatch.setattr(os, "sendfile", refuse)
    data = os.urandom(3 * CHUNK_SIZE + 7)
    (tmp_path / "src").write_bytes(data)
    n, sha, _ = _copy(tmp_path / "src", tmp_path / "dst")
    assert (n, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "dst").read_bytes() == data


def test_a_real_failure_is_raised_not_stepped_over(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "copy_file_range", full)
    (tmp_path / "src").write_bytes(b"x" * 100)
    with pytest.raises(OSError, match="No space left"):
        _copy(tmp_path / "src", tmp_path / "dst")


def test_the_hash_is_of_what_landed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy that stores other bytes than the source's (here: a flipped byte
    written by the copy itself) hashes to what is stored, not what was meant."""
    real = os.copy_file_range

    def damaging(src: int, dst: int, count: int, off_src: int, off_dst: int) -> int:
        n = real(src, dst, count, off_src, off_dst)
        if n:
            os.pwrite(dst, b"\x00", off_dst)
        return n

    monkeypatch.setattr(os, "copy_file_range", damaging)
    data = b"\xff" * (CHUNK_SIZE + 1)
    (tmp_path / "src").write_bytes(data)
    _, sha, _ = _copy(tmp_path / "src", tmp_path / "dst", "copy_file_range")
    assert sha == hashlib.sha256((tmp_path / "dst").read_bytes()).hexdigest()
    assert sha != hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", ["none", "zstd"])  # zstd: not worth it, stored raw
def test_local_put_and_restore_go_through_the_kernel(
    repo: Repository, make_file: MakeFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    compression: str,
) -> None:
    calls: list[int] = []
    real = os.copy_file_range

    def counted(*args: int) -> int:
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", counted)
    repo.compression = compression
    repo.store.compress = compression == "zstd"
    src = make_file(size=2 * CHUNK_SIZE + 9)
    put = repo.put_file(src.path, sha256=src.sha256, size=src.size)
    assert put.written and put.oid == src.sha256 and calls
    out = tmp_path / "restored"
    calls.clear()
    repo.read_object_to(put.oid, str(out), src.size)
    assert calls and out.read_bytes() == Path(src.path).read_bytes()

    # A rotted object is refused and leaves nothing behind.
    stored = object_file(repo, put.oid)
    data = bytearray(stored.read_bytes())
    data[CHUNK_SIZE] ^= 1
    stored.write_bytes(bytes(data))
    out.unlink()
    with pytest.raises(BackupInvalid, match="sha256 mismatch"):
        repo.read_object_to(put.oid, str(out), src.size)
    assert not out.exists()
    seen = iter(range(100))
    with pytest.raises(Cancelled):
        repo.read_object_to(put.oid, str(out), src.size, should_stop=lambda: next(seen) >= 1)
    assert not out.exists()
