"""What a BACKUP's snapshot costs the server beside the statements: one trip
to a normal-priority thread for the capture and the buffers' conversion, and
nothing to remove at its release once the backup's store removed its staging
folder (each trip and each file call is a take of the GIL beside the event
loop: bench/gil_takes.py, docs/performance.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage import snapshot
from storage.backup import Repository, resolve_target, write_backup
from storage.engine import Engine
from tests.helpers import Quiet

from .conftest import Run, col


@pytest.fixture
def two_buffered(engine: Engine, run: Run) -> None:
    for name in ("t", "u"):
        engine.create_table("app", name, "shared", [col("id", "BIGINT", primary_key=True),
                                                    col("v", "TEXT")])
        run(f"INSERT INTO app.{name} VALUES (1, 'a'), (2, 'b')")


def three_flushed(engine: Engine, run: Run, values: Callable[[int], str]) -> None:
    """app.t (id, v) with three flushed files, the k-th of the rows `values(k)`."""
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                               col("v", "TEXT")])
    for k in range(3):
        run(f"INSERT INTO app.t VALUES {values(k)}")
        engine.flush_table("app", "t")


def test_the_capture_and_the_conversions_are_one_trip(
        engine: Engine, two_buffered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    trips: list[Any] = []
    real = snapshot.priority.at_normal_priority

    def counted(fn: Any) -> Any:
        trips.append(fn)
        return real(fn)

    monkeypatch.setattr(snapshot.priority, "at_normal_priority", counted)
    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        assert len(image.exports) == 2  # both tables' buffers were converted
    assert len(trips) == 1  # was three: the capture, then one a table's buffer


def test_a_stored_backup_leaves_its_snapshot_nothing_to_remove(
        engine: Engine, two_buffered: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repository(resolve_target("main", [str(tmp_path / "backups")], {}))
    removed: list[str] = []
    real = snapshot.shutil.rmtree

    def spy(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).exists():
            removed.append(str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(snapshot.shutil, "rmtree", spy)
    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        staging = image.exports[0].staging  # type: ignore[attr-defined]
        m = write_backup(repo, image, "bk-1", snapshot_at=snap.snapshot_at, label=None,
                         work=Quiet())
        assert not staging.exists()  # the store removed it, in the job process
    assert removed == []
    assert sum(t.rows for t in m.tables) == 4
    assert repo.verify("bk-1").is_valid


def test_a_failed_store_leaves_the_staging_to_the_release(
        engine: Engine, two_buffered: None, tmp_path: Path) -> None:
    repo = Repository(resolve_target("main", [str(tmp_path / "backups")], {}))

    class Failing(Quiet):
        def fault(self, point: str, **info: Any) -> None:
            if point == "backup.before_object":
                raise RuntimeError("stop here")

    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        staging = image.exports[0].staging  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError):
            write_backup(repo, image, "bk-1", snapshot_at=snap.snapshot_at, label=None,
                         work=Failing())
    assert not staging.exists()
    assert repo.manifest_ids() == []


def test_small_buffers_go_with_the_call_and_only_past_the_budget_through_a_file(
        engine: Engine, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A BACKUP's buffered rows up to snapshot.INLINE_BYTES in all travel
    inside the job-process call, each table's pickled on its own (no file:
    spilled, each table's rows were ~11 takes of the server's GIL, 577 a
    BACKUP of 50 such tables); a table whose rows would pass it is spilled.
    Either way, pickled as the job process gets them, the backup holds
    every row."""
    import pickle

    for i in range(6):
        engine.create_table("app", f"t{i}", "shared", [col("id", "BIGINT", primary_key=True),
                                                       col("v", "TEXT")])
        rows = 3 if i < 5 else 400
        run(f"INSERT INTO app.t{i} VALUES " + ", ".join(
            f"({k}, '{'x' * 200}')" for k in range(rows)))
    sizes = {}
    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        for e in image.exports:
            assert isinstance(e, snapshot.BufferExport) and e.spilled is None
            assert e.rows is None and e.packed is not None  # pickled on its own
            sizes[e.table_uid] = pickle.loads(e.packed).get_total_buffer_size()
    big = max(sizes.values())
    assert big > 4 * sum(v for v in sizes.values() if v != big)
    # A budget the small ones fit in and the big one does not.
    monkeypatch.setattr(snapshot, "INLINE_BYTES", big - 1)
    repo = Repository(resolve_target("main", [str(tmp_path / "backups")], {}))
    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        exports = [e for e in image.exports if isinstance(e, snapshot.BufferExport)]
        spilled = [e for e in exports if e.spilled is not None]
        assert len(spilled) == 1 and spilled[0].rows is None and spilled[0].spilled.exists()
        assert sizes[spilled[0].table_uid] == big
        assert all(e.packed is not None for e in exports if e.spilled is None)
        image = pickle.loads(pickle.dumps(image))  # as the job process gets it
        m = write_backup(repo, image, "bk-1", snapshot_at=snap.snapshot_at, label=None,
                         work=Quiet())
    assert sum(t.rows for t in m.tables) == 5 * 3 + 400
    assert repo.verify("bk-1").is_valid


def test_the_snapshot_breathes_between_tables(
        engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its per-table Python (each buffer's conversion, each table's entry,
    each small buffer's pickle) goes step by step through a Breather, so a
    thread beside the event loop never holds the GIL for the switch
    interval's 5 ms across 50 tables (priority.Breather)."""
    steps: list[int] = []

    class Counting:
        def __init__(self) -> None:
            steps.append(0)

        def __call__(self) -> None:
            steps[-1] += 1

    for i in range(4):
        engine.create_table("app", f"t{i}", "shared", [col("id", "BIGINT", primary_key=True)])
        run(f"INSERT INTO app.t{i} VALUES (1)")
    monkeypatch.setattr(snapshot.priority, "Breather", Counting)
    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        assert len(image.exports) == 4
    assert steps == [4, 8]  # the conversions; then the entries and the pickles


def test_a_second_backup_reads_no_footer_and_counts_the_same(
        engine: Engine, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live count of a BACKUP reads no footer of its own buffered rows'
    files (their writer's metadata says it) and, in the same process, none of
    the flushed files an earlier BACKUP read (storage/live_rows.py)."""
    from storage import live_rows

    monkeypatch.setattr(live_rows, "_FOOTERS", {})
    three_flushed(engine, run, lambda k: f"({k}, 'a'), ({k + 10}, 'b')")
    run("UPDATE app.t SET v = 'c' WHERE id = 1")
    run("INSERT INTO app.t VALUES (100, 'buffered')")
    reads: list[str] = []
    real = live_rows.pq.read_metadata
    monkeypatch.setattr(live_rows.pq, "read_metadata",
                        lambda p, *a, **k: (reads.append(str(p)), real(p, *a, **k))[1])
    repo = Repository(resolve_target("main", [str(tmp_path / "backups")], {}))
    counted = []
    for backup_id in ("bk-1", "bk-2"):
        reads.clear()
        with engine.snapshot({"app": None}, defer_export=True) as snap:
            (image,) = snap.namespaces
            m = write_backup(repo, image, backup_id, snapshot_at=snap.snapshot_at, label=None,
                             work=Quiet())
        counted.append(m.totals.live_rows)
        assert not any("snapshot-" in r for r in reads)  # its own export: not read back
        if backup_id == "bk-2":
            assert reads == []
        else:
            assert len(reads) == 3  # the three flushed files
    assert counted == [7, 7]


def test_a_small_buffer_is_stored_from_memory_with_no_file(
        engine: Engine, run: Run, two_buffered: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffered rows that went packed (under INLINE_BYTES) are encoded as
    Parquet in memory and stored from there: no file is written for them, not
    even the staging folder made (creating, writing and removing a file cost
    2.5 times the encoding of one row). The backup verifies, byte for byte."""
    def no_file(*_: Any, **__: Any) -> None:
        raise AssertionError("a Parquet file was written for a small buffer")

    monkeypatch.setattr(snapshot, "write_data_file", no_file)
    repo = Repository(resolve_target("main", [str(tmp_path / "backups")], {}))
    with engine.snapshot({"app": None}, defer_export=True) as snap:
        (image,) = snap.namespaces
        staging = image.exports[0].staging
        m = write_backup(repo, image, "bk-1", snapshot_at=snap.snapshot_at, label=None,
                         work=Quiet())
        assert not staging.exists()
    assert [(f.source, f.rows) for t in m.tables for f in t.files] == [("buffer", 2)] * 2
    assert m.totals.live_rows == 4
    report = repo.verify("bk-1")
    assert report.is_valid and report.files_checked == 2, report.errors


def test_a_second_backup_looks_its_stored_files_up_at_once(
        engine: Engine, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A BACKUP of files the target holds already (a second one, nothing
    changed) finds them all in one look-up (`find_contents`), none by a
    look-up of its own, and writes no object."""
    from storage.backup.objects import ObjectStore

    three_flushed(engine, run, lambda k: f"({k}, 'a')")
    run("INSERT INTO app.t VALUES (100, 'buffered')")
    repo = Repository(resolve_target("main", [str(tmp_path / "backups")], {}))
    manifests = []
    for backup_id in ("bk-1", "bk-2"):
        with engine.snapshot({"app": None}, defer_export=True) as snap:
            (image,) = snap.namespaces
            manifests.append(write_backup(repo, image, backup_id, snapshot_at=snap.snapshot_at,
                                          label=None, work=Quiet()))

        def one_by_one(*_: Any, **__: Any) -> None:
            raise AssertionError("a file was looked up on its own")

        monkeypatch.setattr(ObjectStore, "find", one_by_one)
    first, second = manifests
    assert second.totals.bytes_written == 0 and first.totals.bytes_written > 0
    assert [f.oid for t in second.tables for f in t.files] == [
        f.oid for t in first.tables for f in t.files]
