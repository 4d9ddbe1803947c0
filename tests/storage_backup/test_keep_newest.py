"""keep_last's drops as one job-process call (storage/backup/drops.py
`keep_newest`): the namespace's whole backups beyond the newest n go, oldest
first, with what only they used; others' backups, table backups and a
backup another drop removed first are left alone."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import BackupInvalid
from storage.backup import Repository, listing
from storage.backup.drops import drop_plan, keep_newest
from tests.helpers import Quiet

from .conftest import MakeFile, manifest_doc, object_file


def _backup(repo: Repository, make_file: MakeFile, backup_id: str, minute: int,
            size: int, namespace: str = "app", scope: dict[str, Any] | None = None) -> str:
    f = make_file(size=size)
    repo.put_file(f.path)
    doc = manifest_doc(backup_id, [f], namespace=namespace)
    doc["created_at"] = f"2026-01-01T00:{minute:02d}:00.000Z"
    if scope is not None:
        doc["scope"] = scope
    repo.write_manifest(doc)
    return f.sha256


@pytest.fixture
def five(repo: Repository, make_file: MakeFile) -> dict[str, str]:
    """app: bk-1 … bk-4 (oldest first, 1000-4000 bytes of their own), one
    table backup of app between them, and crm's bk-c, oldest of all."""
    oids = {f"bk-{i}": _backup(repo, make_file, f"bk-{i}", 10 + i, 1000 * i) for i in range(1, 5)}
    oids["bk-t"] = _backup(repo, make_file, "bk-t", 11, 500,
                           scope={"kind": "tables", "tables": ["events"]})
    oids["bk-c"] = _backup(repo, make_file, "bk-c", 1, 700, namespace="crm")
    return oids


def test_the_oldest_go_with_only_their_objects_and_the_archives_prune_once(
        repo: Repository, five: dict[str, str]) -> None:
    pruned: list[tuple[Repository, str]] = []

    def prune_archive(r: Repository, namespace: str) -> int:
        pruned.append((r, namespace))
        return 5

    dropped = keep_newest(repo, "app", 2, Quiet(), prune_archive)[0]
    assert dropped == [("bk-2", 2000), ("bk-1", 1000 + 5)]  # newest first
    assert sorted(repo.manifest_ids()) == ["bk-3", "bk-4", "bk-c", "bk-t"]
    for gone in ("bk-1", "bk-2"):
        assert not object_file(repo, five[gone]).exists()
    for kept in ("bk-3", "bk-4", "bk-c", "bk-t"):
        assert object_file(repo, five[kept]).exists()
    assert pruned == [(repo, "app")]


def test_nothing_beyond_keep_drops_nothing_and_prunes_no_archive(
        repo: Repository, five: dict[str, str]) -> None:
    pruned: list[str] = []
    assert keep_newest(repo, "app", 4, Quiet(), lambda r, ns: pruned.append(ns) or 0)[0] == []
    assert keep_newest(repo, "app", 4, Quiet())[0] == []
    assert pruned == [] and len(repo.manifest_ids()) == 6


def test_a_backup_another_drop_removed_first_is_skipped(
        repo: Repository, five: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    listed = repo.list_manifests("app")
    repo.delete_manifest("bk-1")  # a DROP BACKUP between the listing and the drop
    monkeypatch.setattr(repo, "list_manifests", lambda namespace=None, light=False: listed)
    assert keep_newest(repo, "app", 2, Quiet())[0] == [("bk-2", 2000)]
    assert sorted(repo.manifest_ids()) == ["bk-3", "bk-4", "bk-c", "bk-t"]


def test_a_damaged_backup_in_the_target_stops_it_before_anything_goes(
        repo: Repository, five: dict[str, str]) -> None:
    """The prune after a drop cannot tell what a damaged manifest uses, and
    refused only once the dropped backup's manifest had gone: now nothing
    goes (this dropped bk-2's manifest, then failed)."""
    path = Path(repo.target.base) / "manifests" / "bk-1.json"
    path.write_bytes(path.read_bytes()[:-20])  # the oldest is damaged: listed apart
    with pytest.raises(BackupInvalid, match="nothing was dropped"):
        keep_newest(repo, "app", 1, Quiet())
    assert sorted(repo.manifest_ids()) == ["bk-1", "bk-2", "bk-3", "bk-4", "bk-c", "bk-t"]
    assert all(object_file(repo, five[b]).exists() for b in ("bk-2", "bk-3"))
    assert keep_newest(repo, "app", 5, Quiet()) == ([], ["bk-1"])  # nothing to drop: no refusal,
    # and the one it could not read named (a BACKUP's result.not_read)


def test_drop_backup_beside_a_damaged_backup_removes_nothing(
        repo: Repository, five: dict[str, str]) -> None:
    path = Path(repo.target.base) / "manifests" / "bk-c.json"
    path.write_bytes(b"{not json")
    with pytest.raises(BackupInvalid, match="cannot tell which objects are in use"):
        drop_plan(repo, "bk-2")
    assert "bk-2" in repo.manifest_ids()


def test_manifests_are_read_a_number_of_times_linear_in_the_drops(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each drop's prune reread every manifest: N backups beyond keep (planted
    copies of one manifest, say) took N^2 reads (1,000: 76 s). Now the
    manifests go, then one prune."""
    n = 40
    for i in range(n):
        _backup(repo, make_file, f"bk-{i:02d}", i, 10 + i)
    reads: list[str] = []
    read_small = type(repo)._read_small

    def counted(self: Repository, path: str, *limit: int) -> Any:
        if "/manifests/" in path:
            reads.append(path)
        return read_small(self, path, *limit)

    monkeypatch.setattr(type(repo), "_read_small", counted)
    dropped = keep_newest(repo, "app", 1, Quiet())[0]
    assert [b for b, _ in dropped] == [f"bk-{i:02d}" for i in range(n - 2, -1, -1)]
    assert all(freed == 10 + int(b[3:]) for b, freed in dropped)  # each its own object
    assert repo.manifest_ids() == [f"bk-{n - 1:02d}"] and len(repo.list_objects()) == 1
    assert len(reads) < 4 * n, len(reads)


def test_a_prune_failing_after_the_manifests_went_names_them_and_everything_frees_them(
        repo: Repository, five: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Deletes in `objects/` refused (EPERM: an immutable folder): the drop is
    PruneFailed naming the dropped backups (it crosses from the job process),
    their objects stay; the next keep_newest with `everything` frees them."""
    import errno
    import pickle

    from catalog.errors import PermissionDenied
    from storage.backup.drops import PruneFailed
    from storage.backup.nofollow import NoFollowHandler

    real = NoFollowHandler.delete_file

    def refuse(handler: NoFollowHandler, path: str) -> None:
        if "/objects/" in path:
            raise PermissionError(errno.EPERM, "Operation not permitted", path)
        real(handler, path)

    monkeypatch.setattr(NoFollowHandler, "delete_file", refuse)
    with pytest.raises(PruneFailed) as failed:
        keep_newest(repo, "app", 3, Quiet())
    again = pickle.loads(pickle.dumps(failed.value))
    assert again.dropped == [("bk-1", 0)] and again.pruning
    assert isinstance(again.error, PermissionDenied) and again.code == "PERMISSION_DENIED"
    assert "bk-1" not in repo.manifest_ids() and object_file(repo, five["bk-1"]).exists()

    monkeypatch.setattr(NoFollowHandler, "delete_file", real)
    assert keep_newest(repo, "app", 2, Quiet(), everything=True)[0] == [("bk-2", 2000)]
    assert not object_file(repo, five["bk-1"]).exists()  # not bk-2's, freed all the same
    assert not object_file(repo, five["bk-2"]).exists()
    for kept in ("bk-3", "bk-4", "bk-c", "bk-t"):
        assert object_file(repo, five[kept]).exists()


def _taken(repo: Repository, make_file: MakeFile, backup_id: str, snapshot: int,
           landed: int) -> str:
    """A backup of app whose snapshot was taken at minute `snapshot` and whose
    manifest landed at minute `landed`."""
    f = make_file(size=1000)
    repo.put_file(f.path)
    doc = manifest_doc(backup_id, [f])
    doc["snapshot_at"] = f"2026-01-01T00:{snapshot:02d}:00.000Z"
    doc["created_at"] = f"2026-01-01T00:{landed:02d}:00.000Z"
    repo.write_manifest(doc)
    return f.sha256


@pytest.fixture
def slow_first(repo: Repository, make_file: MakeFile) -> None:
    """bk-early's snapshot is older, but its upload ended after bk-late's (a
    throttled BACKUP and a second one started a second later)."""
    _taken(repo, make_file, "bk-early", 10, 30)
    _taken(repo, make_file, "bk-late", 11, 20)


def test_the_newest_snapshot_is_kept_not_the_last_upload(
        repo: Repository, slow_first: None) -> None:
    assert [m["backup_id"] for m in repo.list_manifests()] == ["bk-late", "bk-early"]
    assert [m["backup_id"] for m in repo.listing("app")] == ["bk-late", "bk-early"]
    assert repo.choose_backup("app")["backup_id"] == "bk-late"  # RESTORE without backup_id
    assert repo.choose_backup("app", as_of="2026-01-01T00:10:30Z")["backup_id"] == "bk-early"
    assert [b for b, _ in keep_newest(repo, "app", 1, Quiet())[0]] == ["bk-early"]
    assert repo.manifest_ids() == ["bk-late"]


def test_the_backup_just_written_is_never_dropped(repo: Repository, slow_first: None) -> None:
    """bk-early's BACKUP ends last with keep_last = 1: bk-late is the newest
    and stays, and bk-early, the one it wrote, stays too (its job completed)."""
    assert keep_newest(repo, "app", 1, Quiet(), written="bk-early")[0] == []
    assert sorted(repo.manifest_ids()) == ["bk-early", "bk-late"]
    assert keep_newest(repo, "app", 1, Quiet(), written="bk-late")[0] == [("bk-early", 1000)]


def test_keep_last_keeps_summaries_of_the_manifests_it_counts(
        repo: Repository, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch) -> None:
    """keep_last listed every manifest whole (tables, objects, labels of up to
    65,536 characters) for as long as it ran, though it reads again each one
    it drops: 3,000 planted 60,000-character labels cost the job process some
    300 MB. It counts their summaries now (listing.summary_keeper)."""
    monkeypatch.setattr(listing, "LISTING_LABEL_CHARS", 60_000)  # 60 manifests: 1,024 each
    f = make_file(size=100)
    repo.put_file(f.path)
    for i in range(60):
        doc = manifest_doc(f"bk-{i:02d}", [f])
        doc["created_at"] = f"2026-01-01T00:{i:02d}:00.000Z"
        repo.write_manifest({**doc, "label": "x" * 60_000})
    repo.list_manifests()  # the memo holds them (as a warm server would)
    tracemalloc.start()
    try:
        assert keep_newest(repo, "app", 100, Quiet()) == ([], [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_500_000, peak  # whole: 60 labels of 60,000 characters, 3.6 MB at least
