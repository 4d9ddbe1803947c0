"""BACKUP and RESTORE with several files in flight (storage/inflight.py):
the result is the same as one at a time, and a file that fails (a source that
rotted after its flush, an object that rotted in the target) stops the run,
leaves no object, lock, temp file or restored file behind, and is reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlglot

from catalog import DataFile
from catalog.errors import BackupInvalid
from storage import inflight
from storage.backup import Repository, resolve_target, write_backup
from storage.backup.schema import FileEntry, Manifest
from storage.engine import Engine
from storage.install import Restore
from tests.proof.test_ddl_race import Quiet
from tests.storage_backup.conftest import tmp_files

from .conftest import col

FILES = 6


@pytest.fixture
def app(engine: Engine) -> Engine:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("data", "BYTES")])
    for k in range(FILES):
        ids = pa.array(range(k * 100, (k + 1) * 100), pa.int64())
        engine.insert_arrow("app", "t", pa.table({"id": ids, "data": [bytes([k]) * 5000] * 100}))
        engine.flush_table("app", "t")
    return engine


def backup(engine: Engine, repo: Repository, backup_id: str) -> Manifest:
    with engine.snapshot({"app": None}) as snap:
        (image,) = snap.namespaces
        return write_backup(repo, image, backup_id, snapshot_at=snap.snapshot_at, label=None,
                            work=Quiet(), workers=4)


def fetcher(repo: Repository) -> Any:
    def fetch(f: FileEntry, dest: Path, on_bytes: Any) -> None:
        repo.read_object_to(f.oid, str(dest), f.size, on_bytes=on_bytes, sha256=f.sha256)
    return fetch


def count(engine: Engine, ns: str) -> int:
    query = sqlglot.parse_one(f"SELECT count(*) AS n FROM {ns}.t", read="duckdb")
    return int(engine.query(query, None, ns).column("n")[0].as_py())


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_parallel_round_trip(app: Engine, tmp_path: Path, compression: str) -> None:
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression=compression)
    m = backup(app, repo, "bk-1")
    assert len(m.tables[0].files) == FILES
    assert repo.verify("bk-1").is_valid
    app.restore(Restore(m, "copy", workers=4), fetcher(repo), Quiet())
    assert count(app, "copy") == count(app, "app") == FILES * 100


def test_a_backup_storing_one_new_file_starts_no_transfer_threads(
        app: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second backup into a target after one more flush stores one file
    of seven: the six stored already are looked up on the caller's thread,
    and no pool starts for the one that moves (inflight.py)."""
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression="zstd")
    backup(app, repo, "bk-1")
    app.insert_arrow("app", "t", pa.table({"id": pa.array([10_000], pa.int64()),
                                           "data": [b"x" * 5000]}))
    app.flush_table("app", "t")
    pools: list[object] = []
    real = inflight.ThreadPoolExecutor
    monkeypatch.setattr(inflight, "ThreadPoolExecutor",
                        lambda *args, **kw: pools.append(args) or real(*args, **kw))
    m = backup(app, repo, "bk-2")
    assert pools == []
    assert len(m.tables[0].files) == FILES + 1 and m.totals.bytes_written > 0
    assert repo.verify("bk-2").is_valid


def test_a_rotted_source_stops_the_backup_and_leaves_nothing(app: Engine, tmp_path: Path) -> None:
    files = app.catalog.scan(DataFile, app.tables.state("app", "t").uid)
    victim = app.tables.files.abs(sorted(f.path for f in files)[3])
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    target = tmp_path / "b"
    repo = Repository(resolve_target("t", [str(target)], {}), compression="none")
    with pytest.raises(BackupInvalid, match="changed while being backed up"):
        backup(app, repo, "bk-1")
    assert repo.list_objects() == {} and repo.manifest_ids() == []
    assert repo.list_locks() == [] and tmp_files(repo) == []


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_missing_source_stops_the_backup_and_leaves_nothing(
        app: Engine, tmp_path: Path, compression: str) -> None:
    """A data file removed from under the server (outside damage) refuses the
    backup with BACKUP_INVALID naming the file, not an internal error."""
    files = app.catalog.scan(DataFile, app.tables.state("app", "t").uid)
    victim = app.tables.files.abs(sorted(f.path for f in files)[2])
    victim.unlink()
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression=compression)
    with pytest.raises(BackupInvalid, match=f"file '{victim}' cannot be read: No such file"):
        backup(app, repo, "bk-1")
    assert repo.list_objects() == {} and repo.manifest_ids() == []
    assert repo.list_locks() == [] and tmp_files(repo) == []


def test_a_rotted_object_stops_the_restore_and_leaves_nothing(app: Engine, tmp_path: Path) -> None:
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression="none")
    m = backup(app, repo, "bk-1")
    victim = m.tables[0].files[4].oid
    path = Path(repo.store.path(victim))
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    restore = Restore(m, "copy", workers=4)
    before = sorted(p for p in (app.tables.files.files_dir).rglob("*") if p.is_file())
    with pytest.raises(BackupInvalid, match=f"object {victim} is corrupt"):
        app.restore(restore, fetcher(repo), Quiet())
    after = sorted(p for p in (app.tables.files.files_dir).rglob("*") if p.is_file())
    assert after == before
    assert not any((app.tables.files.files_dir / uid).exists()
                   for uid in restore.table_uids.values())
