"""Copier processes (storage/backup/copier.py): the copy of a raw local object
runs in another process, step by step under the caller's control: every byte
hashed as written, progress per step, a cancel or an error raised between two
steps stops it and leaves the copier ready for the next copy, and a copier
that dies mid-copy leaves the copy to the caller's thread."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from catalog.errors import Cancelled
from storage.backup import copier, fastcopy
from storage.backup.transfer import CHUNK_SIZE
from tests.helpers import no_descriptor_left

from .conftest import kill_copiers_at_first_step


@pytest.fixture(autouse=True)
def _on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copier, "_enabled", True)


def _fds(src: Path, dst: Path) -> tuple[int, int]:
    return os.open(src, os.O_RDONLY), os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC)


def _fd_targets(pid: int) -> set[str]:
    out = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7])
def test_copies_in_another_process(tmp_path: Path, size: int) -> None:
    """Between two steps (the copier waits for the answer) the destination is
    open in a copier process, and the copier is this process's child."""
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    s, d = _fds(tmp_path / "src", tmp_path / "dst")
    holders: list[int] = []

    def step(n: int) -> None:
        assert 0 < n <= CHUNK_SIZE
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == os.getpid() and str(tmp_path / "dst") in _fd_targets(int(pid)):
                    holders.append(int(pid))

    try:
        n, sha = fastcopy.copy_file(s, d, step)
    finally:
        os.close(s)
        os.close(d)
    assert (n, sha) == (size, hashlib.sha256(data).hexdigest())
    assert (tmp_path / "dst").read_bytes() == data
    steps = -(-size // CHUNK_SIZE)
    assert len(holders) == steps and len(set(holders)) <= 1
    if holders:  # done: back among the idle copiers, its copies of the fds closed
        assert holders[0] in copier.idle_pids()
        assert str(tmp_path / "dst") not in _fd_targets(holders[0])


def test_a_cancel_between_steps_stops_it_and_the_copier_is_reused(tmp_path: Path) -> None:
    data = os.urandom(4 * CHUNK_SIZE)
    (tmp_path / "src").write_bytes(data)
    s, d = _fds(tmp_path / "src", tmp_path / "dst")
    steps: list[int] = []
    try:
        with pytest.raises(Cancelled):
            fastcopy.copy_file(s, d, steps.append, should_stop=lambda: len(steps) >= 2)
    finally:
        os.close(s)
        os.close(d)
    assert steps == [CHUNK_SIZE, CHUNK_SIZE]  # nothing moved after the cancel
    before = copier.started
    s, d = _fds(tmp_path / "src", tmp_path / "dst2")
    try:
        n, sha = fastcopy.copy_file(s, d)
    finally:
        os.close(s)
        os.close(d)
    assert (n, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert copier.started == before  # the stopped copier did this one


def test_an_error_between_steps_is_the_callers(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(2 * CHUNK_SIZE))
    s, d = _fds(tmp_path / "src", tmp_path / "dst")

    def fails(_: int) -> None:
        raise OSError(errno.EIO, "from the progress callback")

    try:
        with pytest.raises(OSError, match="from the progress callback"):
            fastcopy.copy_file(s, d, fails)
    finally:
        os.close(s)
        os.close(d)


def test_a_failure_in_the_copier_goes_through_the_mapper(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x" * 100)
    s = os.open(tmp_path / "src", os.O_RDONLY)
    d = os.open(tmp_path / "dst", os.O_RDONLY | os.O_CREAT)  # not writable: EBADF
    try:
        with pytest.raises(RuntimeError, match=f"mapped: {errno.EBADF}"):
            fastcopy.copy_file(s, d, error=lambda exc: RuntimeError(f"mapped: {exc.errno}"))
    finally:
        os.close(s)
        os.close(d)


def test_a_copier_that_dies_mid_copy_leaves_the_copy_to_the_caller(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 1)
    (tmp_path / "src").write_bytes(data)
    s, d = _fds(tmp_path / "src", tmp_path / "dst")
    killed: list[int] = []
    step = kill_copiers_at_first_step(killed)

    try:
        n, sha = fastcopy.copy_file(s, d, step)
    finally:
        os.close(s)
        os.close(d)
    assert killed
    assert (n, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "dst").read_bytes() == data
    assert not set(killed) & set(copier.idle_pids())


def test_too_many_open_files_leaves_copier_processes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copier process that could not start for want of file descriptors
    (EMFILE) turned copier processes off until the server restarted: every
    later copy ran on the server's threads. Now that copy does, and the next
    one goes to a copier process again."""
    data = os.urandom(CHUNK_SIZE + 1)
    (tmp_path / "src").write_bytes(data)
    monkeypatch.setattr(copier, "_idle", [])  # none kept: one must start
    s, d = _fds(tmp_path / "src", tmp_path / "dst")
    try:
        with no_descriptor_left():
            n, sha = fastcopy.copy_file(s, d, None)
    finally:
        os.close(s)
        os.close(d)
    assert (n, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert copier.enabled()
    started = copier.started
    s, d = _fds(tmp_path / "src", tmp_path / "dst2")
    try:
        assert fastcopy.copy_file(s, d, None) == (n, sha)
    finally:
        os.close(s)
        os.close(d)
    assert copier.started == started + 1
