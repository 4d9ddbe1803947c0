"""Dropping backups and pruning: only objects nothing references may go."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import AlreadyExists, BackupInvalid, Unavailable
from storage.backup import Repository, prunes
from storage.backup.locks import BackupLock

from .conftest import MakeFile, Source, manifest_doc, object_file


@pytest.fixture
def two_backups(repo: Repository, make_file: MakeFile) -> dict[str, Source]:
    """bk-1 = {shared, only1}; bk-2 = {shared, only2}."""
    files = {
        "shared": make_file(size=3000),
        "only1": make_file(size=1000),
        "only2": make_file(size=2000),
    }
    for f in files.values():
        repo.put_file(f.path)
    repo.write_manifest(manifest_doc("bk-1", [files["shared"], files["only1"]]))
    repo.write_manifest(manifest_doc("bk-2", [files["shared"], files["only2"]], namespace="crm"))
    return files


def test_referenced_objects(repo: Repository, two_backups: dict[str, Source]) -> None:
    assert repo.referenced_objects() == {f.sha256 for f in two_backups.values()}


def test_drop_backup_frees_only_its_own_objects(
    repo: Repository, two_backups: dict[str, Source]
) -> None:
    repo.delete_manifest("bk-1")
    assert repo.prune() == 1000
    assert set(repo.list_objects()) == {two_backups["shared"].sha256, two_backups["only2"].sha256}
    assert repo.verify("bk-2", contents=False).is_valid
    assert repo.prune() == 0


def test_prune_with_candidates_and_keep(repo: Repository, two_backups: dict[str, Source]) -> None:
    m = repo.read_manifest("bk-1")
    repo.delete_manifest("bk-1")
    repo.delete_manifest("bk-2")
    only2 = two_backups["only2"].sha256
    freed = repo.prune(
        keep={two_backups["shared"].sha256}, candidates=[o["oid"] for o in m["objects"]]
    )
    assert freed == 1000
    assert set(repo.list_objects()) == {two_backups["shared"].sha256, only2}


def test_a_prune_of_candidates_looks_them_up_at_once(
    repo: Repository, two_backups: dict[str, Source], make_file: MakeFile,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped backup's objects (keep_last, DROP BACKUP) are looked up in one
    batch (`ObjectStore.sizes`: each directory on the way opened once), none
    on its own, and only those present and unused are removed."""
    from storage.backup.objects import ObjectStore

    repo.delete_manifest("bk-1")
    gone = make_file(size=10)  # a candidate no longer stored

    def one_by_one(*_: Any) -> None:
        raise AssertionError("a candidate was looked up on its own")

    monkeypatch.setattr(ObjectStore, "size_of", one_by_one)
    candidates = [two_backups[k].sha256 for k in ("shared", "only1")] + [gone.sha256]
    assert repo.prune(candidates=candidates) == 1000
    assert set(repo.list_objects()) == {two_backups["shared"].sha256, two_backups["only2"].sha256}


def test_prune_refuses_when_a_manifest_is_unreadable(
    repo: Repository, two_backups: dict[str, Source]
) -> None:
    repo.delete_manifest("bk-1")
    (Path(repo.target.base) / "manifests" / "bk-2.json").write_bytes(b"garbage")
    with pytest.raises(BackupInvalid, match="cannot tell which objects are in use"):
        repo.prune()
    assert len(repo.list_objects()) == 3


def test_running_backup_lock_protects_its_objects(repo: Repository, make_file: MakeFile) -> None:
    new, reused, garbage = make_file(size=10), make_file(size=20), make_file(size=40)
    repo.put_file(reused.path)
    repo.put_file(garbage.path)
    with repo.lock("bk-running") as lock:
        repo.put_file(new.path, lock=lock)  # written by this run
        repo.put_file(reused.path, sha256=reused.sha256, lock=lock)  # deduplicated
        lock_file = Path(repo.target.base) / "locks" / "bk-running.json"
        assert lock_file.is_file()
        assert repo.locked_objects() == {new.sha256, reused.sha256}
        assert repo.prune() == 40  # only the object nobody holds
        repo.write_manifest(manifest_doc("bk-running", [new, reused]))
    assert not lock_file.exists()
    assert repo.prune() == 0
    assert repo.verify("bk-running", contents=False).is_valid


def test_lock_is_written_once_for_preregistered_oids(repo: Repository, make_file: MakeFile) -> None:
    files = [make_file(size=10) for _ in range(5)]
    lock = repo.lock("bk-x")
    writes = 0
    original = lock._write

    def counting(data: bytes) -> None:
        nonlocal writes
        writes += 1
        original(data)

    lock._write = counting
    lock.add(f.sha256 for f in files)
    for f in files:
        repo.put_file(f.path, sha256=f.sha256, lock=lock)
    assert writes == 1
    lock.release()


def test_oids_known_at_the_start_are_in_the_first_write_and_settled_by_the_first_add() -> None:
    """A backup's known oids go into the lock's first write (one write, not
    two); the first `add` of them writes nothing but still waits for running
    prunes (settle), so an object found present afterwards stays present."""
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    written: list[list[str]] = []
    settles: list[int] = []
    lock = BackupLock("bk-x", write=lambda data: written.append(json.loads(data)["oids"]),
                      remove=lambda: None, settle=lambda: settles.append(len(written)),
                      oids=[a, b])
    assert written == [[a, b]] and settles == []
    lock.add([b, a])
    assert written == [[a, b]] and settles == [1]
    lock.add([a])  # known and settled: nothing to do
    assert written == [[a, b]] and settles == [1]
    lock.add([c])
    assert written == [[a, b], [a, b, c]] and settles == [1, 2]
    empty: list[list[str]] = []
    BackupLock("bk-y", write=lambda data: empty.append(json.loads(data)["oids"]),
               remove=lambda: None, settle=lambda: settles.append(-1)).add([])
    assert empty == [[]] and settles == [1, 2]


def test_lock_conflicts(repo: Repository, two_backups: dict[str, Source]) -> None:
    with pytest.raises(AlreadyExists):
        repo.lock("bk-1")  # a backup with that id exists
    lock = repo.lock("bk-3")
    with pytest.raises(AlreadyExists):
        repo.lock("bk-3")
    lock.release()


def test_unreadable_lock_blocks_prune(repo: Repository, two_backups: dict[str, Source]) -> None:
    repo.init()
    locks = Path(repo.target.base) / "locks"
    locks.mkdir(exist_ok=True)
    (locks / "bk-zombie.json").write_text("{half")
    repo.delete_manifest("bk-1")
    with pytest.raises(BackupInvalid, match="bk-zombie"):
        repo.prune()
    assert repo.abandon("bk-zombie") == 0
    assert repo.prune() == 1000


def test_abandon_removes_what_a_dead_backup_wrote(
    repo: Repository, two_backups: dict[str, Source], make_file: MakeFile
) -> None:
    orphan = make_file(size=777)
    lock = repo.lock("bk-dead")
    repo.put_file(orphan.path, lock=lock)
    repo.put_file(two_backups["shared"].path, sha256=two_backups["shared"].sha256, lock=lock)
    # the process dies here: the lock stays behind
    assert repo.list_locks()[0]["backup_id"] == "bk-dead"
    assert repo.abandon("bk-dead") == 777
    assert not object_file(repo, orphan.sha256).exists()
    assert object_file(repo, two_backups["shared"].sha256).exists()
    assert repo.list_locks() == []


def test_failed_backup_leaves_nothing_behind(
    repo: Repository, two_backups: dict[str, Source], make_file: MakeFile
) -> None:
    new = make_file(size=555)
    shared = two_backups["shared"]
    before = repo.list_objects()
    with pytest.raises(RuntimeError), repo.lock("bk-fails") as lock:
        repo.put_file(new.path, lock=lock)
        repo.put_file(shared.path, sha256=shared.sha256, lock=lock)
        raise RuntimeError("the backup failed before its manifest")
    assert repo.list_objects() == before
    assert repo.list_locks() == []
    assert repo.verify("bk-1", contents=False).is_valid
    assert repo.verify("bk-2", contents=False).is_valid


def _markers(repo: Repository) -> list[Path]:
    return sorted((Path(repo.target.base) / "prunes").glob("*.json"))


def test_a_prune_rewrites_its_marker_through_its_whole_run(
    repo: Repository, two_backups: dict[str, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker is rewritten from the prune's start to its last delete, the
    manifests read and a keep_last's manifest deletions (`first`) included: it
    was rewritten only inside the delete loop, so a read phase of ten minutes
    left it looking like a dead prune's, and another server removed it."""
    monkeypatch.setattr(prunes, "REFRESH_SECONDS", 0.05)
    seen: list[int] = []

    def first() -> None:
        seen.append(_markers(repo)[0].stat().st_mtime_ns)
        repo.delete_manifest("bk-1")
        time.sleep(0.4)

    def before_delete(oids: set[str]) -> None:
        seen.append(_markers(repo)[0].stat().st_mtime_ns)

    assert repo.prune(first=first, before_delete=before_delete) == 1000
    assert seen[1] > seen[0]
    assert _markers(repo) == []


def test_a_prune_whose_marker_another_removed_deletes_nothing(
    repo: Repository, two_backups: dict[str, Source]
) -> None:
    """Another server that took this prune for a dead one (and removed its
    marker) may have reused an object it was about to delete: it stops."""
    repo.delete_manifest("bk-1")

    def taken_for_dead(oids: set[str]) -> None:
        assert oids == {two_backups["only1"].sha256}
        for marker in _markers(repo):
            marker.unlink()

    with pytest.raises(Unavailable, match="was removed by another server"):
        repo.prune(before_delete=taken_for_dead)
    assert two_backups["only1"].sha256 in repo.list_objects()
    assert repo.prune() == 1000
