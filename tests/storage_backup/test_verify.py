"""VERIFY BACKUP: reread everything, report every problem, never trust a stat."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import Cancelled, NotFound
from storage.backup import Progress, Repository
from storage.backup.transfer import CHUNK_SIZE

from .conftest import MakeFile, Source, manifest_doc, object_file


@pytest.fixture
def sources(repo: Repository, make_file: MakeFile) -> list[Source]:
    files = [make_file(size=CHUNK_SIZE + 123), make_file(size=5000), make_file(size=1)]
    for f in files:
        repo.put_file(f.path)
    repo.write_manifest(manifest_doc("bk-1", files))
    return files


def test_intact_backup(repo: Repository, sources: list[Source]) -> None:
    report = repo.verify("bk-1", contents=False)
    assert report.is_valid and report.errors == []
    assert report.files_checked == 3
    assert report.bytes_checked == sum(s.size for s in sources)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_byte_anywhere_in_an_object(
    repo: Repository, sources: list[Source], where: str
) -> None:
    victim = sources[0]
    offset = {"first": 0, "middle": victim.size // 2, "last": victim.size - 1}[where]
    path = object_file(repo, victim.sha256)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    report = repo.verify("bk-1", contents=False)
    assert not report.is_valid
    assert report.errors == [f"object {victim.sha256} is corrupt: sha256 mismatch"]
    assert report.files_checked == 3


def test_truncated_deleted_and_all_reported(repo: Repository, sources: list[Source]) -> None:
    object_file(repo, sources[0].sha256).write_bytes(sources[0].data[:-1])
    object_file(repo, sources[1].sha256).unlink()
    report = repo.verify("bk-1", contents=False)
    assert not report.is_valid
    assert sorted(report.errors) == sorted(
        [
            (f"object {sources[0].sha256} is corrupt: size {sources[0].size - 1}, "
             f"expected {sources[0].size}"),
            f"object {sources[1].sha256} is missing",
        ]
    )
    assert report.bytes_checked == sources[2].size  # only the intact one was read


def test_appended_byte(repo: Repository, sources: list[Source]) -> None:
    path = object_file(repo, sources[2].sha256)
    path.write_bytes(sources[2].data + b"\x00")
    assert "size 2, expected 1" in repo.verify("bk-1", contents=False).errors[0]


def test_bad_manifest_is_an_invalid_report(repo: Repository, sources: list[Source]) -> None:
    path = Path(repo.target.base) / "manifests" / "bk-1.json"
    path.write_bytes(path.read_bytes()[:-20])
    report = repo.verify("bk-1", contents=False)
    assert not report.is_valid and report.files_checked == 0
    assert "manifest of backup 'bk-1'" in report.errors[0]


def test_missing_backup(repo: Repository, sources: list[Source]) -> None:
    with pytest.raises(NotFound, match="bk-2"):
        repo.verify("bk-2", contents=False)


def test_progress_rises_to_totals(repo: Repository, sources: list[Source]) -> None:
    seen: list[Progress] = []
    repo.verify("bk-1", contents=False, on_progress=seen.append)
    total = sum(s.size for s in sources)
    assert all(p.files_total == 3 and p.bytes_total == total for p in seen)
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)
    assert (seen[-1].files_done, seen[-1].bytes_done) == (3, total)


def test_progress_advances_past_missing_objects(repo: Repository, sources: list[Source]) -> None:
    object_file(repo, sources[0].sha256).unlink()
    seen: list[Progress] = []
    repo.verify("bk-1", contents=False, on_progress=seen.append)
    assert seen[-1].bytes_done == seen[-1].bytes_total


def test_cancel(repo: Repository, sources: list[Source]) -> None:
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        repo.verify("bk-1", contents=False, should_stop=lambda: next(calls) >= 1)
