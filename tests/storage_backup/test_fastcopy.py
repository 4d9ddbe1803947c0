"""Local copies of raw objects (storage/backup/fastcopy.py): every byte stored
once and hashed as stored, short reads and writes included; a failure goes
through the caller's mapper; a read that returns other bytes than the
source's is caught by the hash; and a local restore or backup through it
still refuses what does not match."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path

import pytest

from catalog.errors import BackupInvalid, Cancelled
from storage.backup import copier, fastcopy
from storage.backup.repository import Repository
from storage.backup.transfer import CHUNK_SIZE

from .conftest import MakeFile, object_file


def _copy(src: Path, dst: Path) -> tuple[int, str, list[int]]:
    seen: list[int] = []
    digest = hashlib.sha256()
    s = os.open(src, os.O_RDONLY)
    d = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        n = fastcopy.copy_checked(s, d, digest, seen.append)
    finally:
        os.close(s)
        os.close(d)
    return n, digest.hexdigest(), seen


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 5, 3 * fastcopy.STEP + 3])
def test_copies_and_hashes_every_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    n, sha, seen = _copy(tmp_path / "src", tmp_path / "dst")
    assert n == size == sum(seen)
    assert sha == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dst").read_bytes() == data
    assert all(k <= CHUNK_SIZE for k in seen)


def test_short_reads_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel may read or write less than asked: every byte still lands once."""
    real_read, real_write = os.preadv, os.pwrite

    def short_read(fd: int, buffers: list[bytearray], offset: int) -> int:
        return real_read(fd, [memoryview(buffers[0])[:4099]], offset)

    def short_write(fd: int, data: memoryview, offset: int) -> int:
        return real_write(fd, data[:777], offset)

    monkeypatch.setattr(os, "preadv", short_read)
    monkeypatch.setattr(os, "pwrite", short_write)
    data = os.urandom(3 * 4099 + 11)
    (tmp_path / "src").write_bytes(data)
    n, sha, _ = _copy(tmp_path / "src", tmp_path / "dst")
    assert (n, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "dst").read_bytes() == data


def test_a_failure_goes_through_the_mapper(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    (tmp_path / "src").write_bytes(b"x" * 100)
    with pytest.raises(OSError, match="No space left"):
        _copy(tmp_path / "src", tmp_path / "dst")
    s = os.open(tmp_path / "src", os.O_RDONLY)
    d = os.open(tmp_path / "dst", os.O_RDWR | os.O_TRUNC)
    try:
        with pytest.raises(RuntimeError, match="mapped: 28"):
            fastcopy.copy_checked(s, d, hashlib.sha256(),
                                  error=lambda exc: RuntimeError(f"mapped: {exc.errno}"))
    finally:
        os.close(s)
        os.close(d)


def test_the_hash_is_of_what_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that returns other bytes than the source holds (here: a flipped
    byte) is hashed and stored alike: the sha256 is of the stored bytes, so it
    no longer matches the source's and the caller refuses the copy."""
    real = os.preadv

    def damaging(fd: int, buffers: list[bytearray], offset: int) -> int:
        n = real(fd, buffers, offset)
        if n:
            buffers[0][0] ^= 0xFF
        return n

    monkeypatch.setattr(os, "preadv", damaging)
    data = b"\xff" * (CHUNK_SIZE + 1)
    (tmp_path / "src").write_bytes(data)
    _, sha, _ = _copy(tmp_path / "src", tmp_path / "dst")
    assert sha == hashlib.sha256((tmp_path / "dst").read_bytes()).hexdigest()
    assert sha != hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", ["none", "zstd"])  # zstd: not worth it, stored raw
@pytest.mark.parametrize("where", ["process", "thread"])
def test_local_put_and_restore_go_through_fastcopy(
    repo: Repository, make_file: MakeFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    compression: str, where: str,
) -> None:
    """A local put and restore copy fd to fd: in a copier process (this
    process's `os.preadv` is never called), or with the copier off on the
    caller's thread; either way a rotted object is refused and a cancel leaves
    nothing behind."""
    monkeypatch.setattr(copier, "_enabled", where == "process" and copier._SUPPORTED)
    calls: list[int] = []
    real = os.preadv

    def counted(fd: int, buffers: list[bytearray], offset: int) -> int:
        calls.append(offset)
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", counted)
    repo.compression = compression
    repo.store.compress = compression == "zstd"
    src = make_file(size=2 * CHUNK_SIZE + 9)
    seen: list[int] = []
    put = repo.put_file(src.path, sha256=src.sha256, size=src.size, on_bytes=seen.append)
    assert put.written and put.oid == src.sha256 and sum(seen) == src.size
    assert bool(calls) == (where == "thread")  # in a copier: not in this process
    out = tmp_path / "restored"
    calls.clear()
    repo.read_object_to(put.oid, str(out), src.size)
    assert out.read_bytes() == Path(src.path).read_bytes()
    assert bool(calls) == (where == "thread")

    # A rotted object is refused and leaves nothing behind.
    stored = object_file(repo, put.oid)
    data = bytearray(stored.read_bytes())
    data[CHUNK_SIZE] ^= 1
    stored.write_bytes(bytes(data))
    out.unlink()
    with pytest.raises(BackupInvalid, match="sha256 mismatch"):
        repo.read_object_to(put.oid, str(out), src.size)
    assert not out.exists()
    seen_stops = iter(range(100))
    with pytest.raises(Cancelled):
        repo.read_object_to(put.oid, str(out), src.size,
                            should_stop=lambda: next(seen_stops) >= 1)
    assert not out.exists()


def test_local_put_and_restore_write_through_the_page_cache_in_pieces(
    repo: Repository, make_file: MakeFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backup's objects and a restore's files are written through the page
    cache, as `cp` writes (written O_DIRECT, the restore took 1.5-1.8x the
    durable copy after a delete), in pieces of PIECE (one 1 MiB write made the
    kernel allocate 1 MiB folios: several times the system CPU)."""
    monkeypatch.setattr(copier, "_enabled", False)  # on this thread, where pwrite is seen
    real = os.pwrite
    writes: list[tuple[bool, int]] = []

    def seen(fd: int, data: memoryview, offset: int) -> int:
        writes.append((bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT), len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", seen)
    src = make_file(size=2 * CHUNK_SIZE + 9)
    put = repo.put_file(src.path, sha256=src.sha256, size=src.size)
    assert put.written
    out = tmp_path / "restored"
    repo.read_object_to(put.oid, str(out), src.size)
    assert out.read_bytes() == Path(src.path).read_bytes()
    assert len(writes) >= 2 * (2 * CHUNK_SIZE // fastcopy.PIECE)  # the put's and the restore's
    assert not any(d for d, _ in writes)
    assert max(n for _, n in writes) == fastcopy.PIECE
    # and small: a job process's write holds its CPU until it returns on a
    # kernel without preemption, however urgent the statement waiting for it
    assert fastcopy.PIECE <= 64 * 1024
