"""VERIFY's reads in copier processes (copier.check): a raw object of a local
target is read and hashed in a copier, step by step under the caller's control,
and the copier hands back the last bytes it hashed (the content's tail, for
the footer check) with the sha256 — never a second read. A damaged object is
still found, a cancel still stops it, and a copier that dies leaves the read
to the caller's thread."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import Cancelled
from storage.backup import Repository, copier
from storage.backup.contents import TAIL, Tail
from storage.backup.transfer import CHUNK_SIZE

from .conftest import MakeFile, kill_copiers_at_first_step, manifest_doc, object_file


@pytest.fixture(autouse=True)
def _on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copier, "_enabled", True)


def _reading(path: Path) -> set[int]:
    """Child processes of this one that hold `path` open."""
    out = set()
    for pid in copier.busy_pids():
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{name}") == str(path):
                    out.add(pid)
            except OSError:
                continue
    return out


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7])
@pytest.mark.parametrize("tail", [0, 10, TAIL])
def test_reads_hashes_and_keeps_the_tail_in_a_copier(tmp_path: Path, size: int,
                                                     tail: int) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    src = os.open(tmp_path / "src", os.O_RDONLY)
    holders: list[set[int]] = []
    try:
        done = copier.check(src, tail, lambda n: holders.append(_reading(tmp_path / "src")),
                            None, None)
    finally:
        os.close(src)
    last = data[len(data) - tail:] if tail else b""
    assert done == (size, hashlib.sha256(data).hexdigest(), last)
    assert len(holders) == -(-size // CHUNK_SIZE) and all(len(h) == 1 for h in holders)


def test_a_cancel_between_steps_stops_it(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(4 * CHUNK_SIZE))
    src = os.open(tmp_path / "src", os.O_RDONLY)
    steps: list[int] = []
    try:
        with pytest.raises(Cancelled):
            copier.check(src, TAIL, steps.append, lambda: len(steps) >= 2, None)
    finally:
        os.close(src)
    assert steps == [CHUNK_SIZE, CHUNK_SIZE]


def test_a_copier_that_dies_leaves_the_read_to_the_caller(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(3 * CHUNK_SIZE))
    src = os.open(tmp_path / "src", os.O_RDONLY)
    killed: list[int] = []
    step = kill_copiers_at_first_step(killed)

    try:
        assert copier.check(src, TAIL, step, None, None) is None
    finally:
        os.close(src)
    assert killed


def test_the_store_checks_a_raw_object_in_a_copier(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ObjectStore.check` (VERIFY) of a raw local object goes to a copier, feeds
    the Tail exactly the last bytes, and a flipped byte is still a mismatch;
    with copiers off the same answers come from this thread."""
    src = make_file(size=2 * CHUNK_SIZE + 5)
    repo.put_file(src.path, sha256=src.sha256, size=src.size)
    data = Path(src.path).read_bytes()
    calls: list[int] = []
    real = copier.check
    monkeypatch.setattr(copier, "check", lambda *a: calls.append(1) or real(*a))
    for on in (True, False):
        monkeypatch.setattr(copier, "_enabled", on)
        tail = Tail()
        assert repo.store.check(src.sha256, src.size, tail=tail) is None
        assert tail.bytes() == data[-TAIL:]
    assert len(calls) == 2  # the second one declined: copiers off
    path = object_file(repo, src.sha256)
    damaged = bytearray(data)
    damaged[CHUNK_SIZE + 3] ^= 1
    path.chmod(0o644)
    path.write_bytes(bytes(damaged))
    for on in (True, False):
        monkeypatch.setattr(copier, "_enabled", on)
        problem = repo.store.check(src.sha256, src.size, tail=Tail())
        assert problem is not None and "sha256 mismatch" in problem


def test_a_copier_that_dies_mid_object_counts_no_byte_twice(
        repo: Repository, make_file: MakeFile) -> None:
    """A copier killed mid-object (kill -9, the OOM killer): the object is read
    again on this thread, and the bytes the dead copier had reported were
    counted as well: VERIFY answered `bytes_checked` (and its job `bytes`)
    above the backup's size, 403,218 for a backup of 302,402."""
    sources = [make_file(size=3 * CHUNK_SIZE + 7), make_file(size=CHUNK_SIZE + 1)]
    for s in sources:
        repo.put_file(s.path, sha256=s.sha256, size=s.size)
    repo.write_manifest(manifest_doc("bk-1", sources))
    killed: list[int] = []
    step = kill_copiers_at_first_step(killed)
    seen: list[int] = []

    def progress(p: Any) -> None:
        step(0)
        seen.append(p.bytes_done)

    report = repo.verify("bk-1", on_progress=progress, contents=False)
    assert killed and report.is_valid
    assert report.bytes_checked == sum(s.size for s in sources)
    assert seen[-1] == report.bytes_checked and max(seen) <= report.bytes_checked


def test_a_copier_that_dies_mid_damaged_object_counts_no_byte_twice(
        repo: Repository, make_file: MakeFile) -> None:
    """As above, the object damaged: the read again on this thread finds the
    mismatch, and the dead copier's bytes stayed counted: bytes_checked went
    past the backup's size."""
    sources = [make_file(size=3 * CHUNK_SIZE + 7), make_file(size=CHUNK_SIZE + 1)]
    for s in sources:
        repo.put_file(s.path, sha256=s.sha256, size=s.size)
    repo.write_manifest(manifest_doc("bk-1", sources))
    for s in sources:
        path = object_file(repo, s.sha256)
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    killed: list[int] = []
    step = kill_copiers_at_first_step(killed)
    seen: list[int] = []

    def progress(p: Any) -> None:
        step(0)
        seen.append(p.bytes_done)

    report = repo.verify("bk-1", on_progress=progress, contents=False)
    total = sum(s.size for s in sources)
    assert killed and not report.is_valid and len(report.errors) == 2
    assert report.bytes_checked == total, (report.bytes_checked, total)
    assert max(seen) <= total
