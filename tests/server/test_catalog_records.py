"""This server's records of a target's backups (server/repos.py
`CatalogRecords`), which judge its manifests (storage/backup/recorded.py), are
read from the catalog again only once a backup record was written: each
listing of a target and each call to a job process scanned every backup
record of the server (10,000: ~170 ms, and ~135 ms to pickle this target's
5,000), in a server that runs a BACKUP every few minutes for weeks."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from catalog import Backup, Catalog
from server.repos import CatalogRecords
from storage.backup.recorded import Fixed


def _backup(i: int, target: str) -> Backup:
    return Backup(backup_id=f"bk-{i:020d}", namespace="app", target=target,
                  created_at="2026-12-06T00:00:00Z", snapshot_at="2026-12-06T00:00:00Z")


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    c = Catalog(tmp_path / "catalog")
    yield c
    c.close()


def test_records_are_read_again_only_after_a_backup_record_is_written(
        catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(6):
        catalog.put(_backup(i, "/t/a" if i % 2 else "/t/b"))
    scans: list[str] = []
    real = catalog.scan

    def counted(kind: Any, prefix: str = "") -> Any:
        scans.append(kind.FAMILY)
        return real(kind, prefix)

    monkeypatch.setattr(catalog, "scan", counted)
    records = CatalogRecords(catalog, "/t/a")
    assert sorted(records.all()) == [f"bk-{i:020d}" for i in (1, 3, 5)]
    first = pickle.dumps(records)
    assert sorted(CatalogRecords(catalog, "/t/a").all()) == [f"bk-{i:020d}" for i in (1, 3, 5)]
    assert pickle.dumps(records) == first
    assert scans == ["backups"]  # one read for all of it
    catalog.put(_backup(7, "/t/a"))
    assert "bk-00000000000000000007" in records.all()
    assert len(scans) == 2
    catalog.delete(Backup, "bk-00000000000000000001")
    fixed = pickle.loads(pickle.dumps(records))
    assert isinstance(fixed, Fixed) and len(scans) == 3
    assert fixed.get("bk-00000000000000000001") is None
    assert fixed.get("bk-00000000000000000007") is not None
    assert sorted(fixed.all()) == [f"bk-{i:020d}" for i in (3, 5, 7)]
    # Another target's records are its own.
    assert sorted(CatalogRecords(catalog, "/t/b").all()) == [f"bk-{i:020d}" for i in (0, 2, 4)]


def test_writes_count_committed_typed_writes_by_family(catalog: Catalog) -> None:
    before = catalog.writes["backups"]
    with catalog.atomic() as b:
        b.put(_backup(1, "/t/a")).put(_backup(2, "/t/a"))
    assert catalog.writes["backups"] == before + 1
    catalog.batch().commit()  # an empty batch writes nothing
    assert catalog.writes["backups"] == before + 1
