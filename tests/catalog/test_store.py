"""The catalog: typed records, atomic batches, checkpoints, restart, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from catalog import (
    Backup,
    Catalog,
    CatalogLocked,
    DataFile,
    Job,
    Namespace,
    Table,
    TableSchema,
    ids,
)
from catalog.diskerrors import DataDirUnavailable
from catalog.ids import new_id
from tests.e2e.test_disk_full import file_size_limit


def test_records_round_trip(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    ns = Namespace("app", options={"x": 1})
    t = Table("app", "t", "uid1", "user", schema_version=2, primary_key=["id"])
    s = TableSchema("uid1", 2, "app", "t", columns=[{"name": "id", "type": "BIGINT"}])
    f = DataFile("uid1", "f1", "files/uid1/f1.parquet", 10, 100, "ab" * 32, 2, user_id="u")
    j = Job(new_id("job"), "flush", result={"rows": 3})
    b = Backup("bk-1", "app", "/x", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z")
    for r in (ns, t, s, f, j, b):
        cat.put(r)
    assert cat.get(Namespace, "app") == ns
    assert cat.get(Table, t.key()) == t
    assert cat.get(TableSchema, s.key()) == s
    assert cat.get(DataFile, f.key()) == f
    assert cat.get(Job, j.job_id) == j
    assert cat.get(Backup, "bk-1") == b
    assert cat.get(Namespace, "nope") is None
    cat.close()


def test_scan_prefix_is_exact(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    for ns, name in [("a", "t1"), ("a", "t2"), ("ab", "t1"), ("b", "t")]:
        cat.put(Table(ns, name, f"{ns}{name}", "shared"))
    assert [t.name for t in cat.scan(Table, "a\x00")] == ["t1", "t2"]
    assert len(cat.scan(Table)) == 4
    cat.close()


def test_batch_is_atomic_across_families(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    batch = cat.batch()
    batch.put(Namespace("app")).put(Table("app", "t", "u1", "shared"))
    batch.put_raw("buf_u1", b"k", b"v")
    # Nothing is visible before commit.
    assert cat.get(Namespace, "app") is None
    assert cat.get_raw("buf_u1", b"k") is None
    batch.commit()
    assert cat.get(Namespace, "app") is not None
    assert cat.get_raw("buf_u1", b"k") == b"v"
    with pytest.raises(RuntimeError), cat.atomic() as b:
        b.delete(Namespace, "app")
        raise RuntimeError("abandon")
    assert cat.get(Namespace, "app") is not None  # the abandoned batch never landed
    cat.close()


def test_checkpoint_is_a_consistent_copy(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    cat.put(Namespace("before"))
    cat.checkpoint(tmp_path / "ck")
    cat.put(Namespace("after"))
    copy = Catalog(tmp_path / "ck")
    assert [n.name for n in copy.scan(Namespace)] == ["before"]
    copy.close()
    cat.close()


def test_lock_refuses_a_second_opener_and_is_released(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    with pytest.raises(CatalogLocked):
        Catalog(tmp_path / "cat")
    cat.close()
    Catalog(tmp_path / "cat").close()


def test_sequence_never_repeats_across_restart(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    first = cat.next_seq(10)
    last = cat.next_seq(1)
    assert last == first + 10
    cat.close()
    cat = Catalog(tmp_path / "cat")
    assert cat.next_seq() > last
    cat.close()


def test_survives_sigkill(tmp_path: Path) -> None:
    """A record written by a process that is then killed is there on reopen."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from catalog import Catalog, Namespace
        cat = Catalog({str(tmp_path / 'cat')!r})
        cat.put(Namespace("survivor"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    assert proc.returncode == -9
    cat = Catalog(tmp_path / "cat")
    assert cat.get(Namespace, "survivor") is not None
    cat.close()


def test_ids_sort_in_creation_order() -> None:
    ids = [new_id("job") for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("job-") for i in ids)


def test_ids_make_no_system_call_and_differ_in_a_forked_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An id's random part comes from a generator seeded once (a system call
    lets the server's GIL go beside the statements); a forked child seeds
    its own, so the two processes' ids do not repeat each other's."""
    import os

    def no(n: int) -> bytes:
        raise AssertionError("os.urandom called for an id")

    with monkeypatch.context() as m:
        m.setattr(os, "urandom", no)
        parent = [new_id("bk")[-6:] for _ in range(50)]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next random parts (no lock another thread may hold), then out
        os.close(read)
        os.write(write, ",".join(str(ids._random.getrandbits(30)) for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = f.read().split(",")
    os.waitpid(pid, 0)
    mine = [str(ids._random.getrandbits(30)) for _ in range(50)]
    assert len(child) == 50 and not set(child) & set(mine)
    assert len(set(parent)) == 50


def test_records_read_back_as_written_with_values_msgspec_refuses(tmp_path: Path) -> None:
    """Record.loads decodes with msgspec and falls back to json for what only
    json.dumps writes (infinities, NaN, lone surrogates); fields a newer version
    added are ignored either way."""
    cat = Catalog(tmp_path / "c")
    odd = Job("job-odd", "backup", fraction_completed=float("inf"),
              result={"big": 2**70, "lone": "\ud800", "neg": float("-inf")})
    plain = Job("job-plain", "backup", result={"rows": 3, "name": "é"})
    cat.put(odd)
    cat.put(plain)
    assert cat.get(Job, "job-odd") == odd
    assert cat.get(Job, "job-plain") == plain
    nan = Job.loads(Job("job-nan", "backup", fraction_completed=float("nan")).dumps())
    assert nan.fraction_completed != nan.fraction_completed
    newer = json.loads(plain.dumps()) | {"field_from_the_future": 1}
    assert Job.loads(json.dumps(newer).encode()) == plain
    cat.close()


def test_a_record_is_written_as_asdict_would_write_it_without_copying_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`Record.dumps` writes the same bytes as json.dumps(dataclasses.asdict(r))
    (a dataclass inside a value included), without asdict's deep copy of the
    record (47 µs for a backup's job row; the row is written several times a
    BACKUP)."""
    import dataclasses
    from datetime import UTC, datetime

    @dataclasses.dataclass
    class Inner:
        path: Path
        parts: tuple[int, ...]

    records = [
        Job("job-a", "backup", status="completed", namespace="app", fraction_completed=1.0,
            result={"backup_id": "bk", "dropped": ["x", "y"], "inner": Inner(Path("/a"), (1, 2)),
                    "when": datetime(2026, 12, 5, tzinfo=UTC), "nan": float("nan")},
            cleanup={"target": "local://t", "members": [{"id": 1}]}),
        Namespace("app", options={"k": "v"}),
        Job("job-b", "flush"),
    ]
    expected = [json.dumps(dataclasses.asdict(r), separators=(",", ":"), default=str).encode()
                for r in records]
    asdict = dataclasses.asdict

    def only_nested(value):  # type: ignore[no-untyped-def]
        assert not isinstance(value, Job | Namespace), "the whole record deep-copied"
        return asdict(value)

    monkeypatch.setattr(dataclasses, "asdict", only_nested)
    assert [r.dumps() for r in records] == expected




def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_family_created_holds_a_descriptor_until_dropped(tmp_path: Path) -> None:
    """RocksDB opens the catalog's directory again for each column family
    created while it runs (a table's write buffer), and keeps it until the
    family is dropped; server/limits.py keeps that many from connections."""
    catalog = Catalog(tmp_path / "catalog")
    before = _open_fds()
    for i in range(30):
        catalog.family(f"t{i}")
    assert catalog.descriptors() == 30 == _open_fds() - before
    for i in range(10):
        catalog.drop_family(f"t{i}")
    time.sleep(1.1)  # the data files are counted at most once a second
    assert catalog.descriptors() == 20 == _open_fds() - before
    catalog.close()
    catalog = Catalog(tmp_path / "catalog")  # opened with the catalog: one for them all
    try:
        assert catalog.descriptors() == 0 and catalog.has_family("t29")
    finally:
        catalog.close()


def test_a_family_made_while_the_disk_refused_is_unavailable_never_a_bug(tmp_path: Path) -> None:
    """RocksDB makes a column family, then cannot write its OPTIONS file (a
    full disk; here a file size limit): the family is in the database, yet
    rocksdict has no handle for it until the catalog opens again. Every later
    use of it was a bare Exception (`column name ... does not exist`: 500
    INTERNAL on every START ARCHIVING until a restart, the change log's family
    made by the first write into it); it is 503 naming the data directory,
    and the family is there after a restart. Cairn's own families, the
    change log's too, are made when the catalog opens, by no statement."""
    catalog = Catalog(tmp_path / "catalog")
    assert catalog.has_family("changes") and catalog.has_family("buffers")
    where = f"the data directory '{tmp_path}'"
    with file_size_limit(16 << 10), pytest.raises(DataDirUnavailable) as refused:
        catalog.family("extra")  # (past the MANIFEST's size, short of the OPTIONS file's)
    assert where in refused.value.message
    for _ in range(2):  # room again: RocksDB holds it, no handle to it
        with pytest.raises(DataDirUnavailable) as again:
            catalog.family("extra")
        assert where in again.value.message and "'extra'" in again.value.message
    catalog.put(Namespace("app"))  # the rest takes writes
    catalog.close()
    catalog = Catalog(tmp_path / "catalog")
    try:
        catalog.family("extra").put(b"k", b"v")
        assert catalog.get_raw("extra", b"k") == b"v" and catalog.get(Namespace, "app")
    finally:
        catalog.close()


def test_the_catalogs_data_files_are_counted(tmp_path: Path) -> None:
    """RocksDB keeps every data (SST) file open, one or more per table with
    rows in its write buffer: 40 tables, 40 descriptors, which
    server/limits.py did not count."""
    path = tmp_path / "catalog"
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    db = Rdict(str(path), opts, column_families={f"t{i}": Options(raw_mode=True)
                                                 for i in range(40)})
    for i in range(40):
        db.get_column_family(f"t{i}").put(b"k", b"v")
    db.close()  # each family's rows go to a data file of its own
    before = _open_fds()
    catalog = Catalog(path)
    try:
        held = _open_fds() - before
        assert 40 <= catalog.descriptors() <= held, (catalog.descriptors(), held)
    finally:
        catalog.close()
