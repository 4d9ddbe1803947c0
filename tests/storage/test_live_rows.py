"""Live rows of a set of files: the footer shortcut for files of first versions
only agrees with a brute-force count, and files with overwrites are read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import live_rows
from storage.types import DELETED, OW, SEQ


def write(path: Path, rows: list[tuple[int, int, bool, bool]], row_group_size: int = 2) -> Path:
    ids, seqs, ows, dels = zip(*rows, strict=True)
    table = pa.table({SEQ: pa.array(seqs, pa.int64()), OW: pa.array(ows, pa.bool_()),
                      "id": pa.array(ids, pa.int64()), DELETED: pa.array(dels, pa.bool_())})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def brute(files: list[list[tuple[int, int, bool, bool]]]) -> int:
    newest: dict[int, tuple[int, bool]] = {}
    for rows in files:
        for key, seq, _ow, deleted in rows:
            if key not in newest or newest[key][0] < seq:
                newest[key] = (seq, deleted)
    return sum(1 for _, deleted in newest.values() if not deleted)


def test_first_versions_only_are_read_off_the_footers(tmp_path: Path) -> None:
    a = [(1, 1, False, False), (2, 2, False, False), (3, 3, False, False)]
    b = [(4, 4, False, False), (5, 5, False, False)]
    paths = [write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)]
    assert sum(live_rows.first_only_rows(pq.read_metadata(p)) for p in paths) == 5
    assert live_rows.count([paths], ["id"]) == brute([a, b]) == 5


def test_no_duckdb_when_every_group_is_read_off_the_footers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup's count of an INSERT-only namespace runs no DuckDB query:
    each costs ms of the job thread, much of it holding the GIL that
    statements on the event loop wait for (docs/performance.md, "p99 beside
    jobs")."""
    a = [(1, 1, False, False), (2, 2, False, False)]
    b = [(3, 3, False, False)]
    paths = [write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)]
    opened: list[object] = []
    real = live_rows._cursor
    monkeypatch.setattr(live_rows, "_cursor", lambda: opened.append(1) or real())
    assert live_rows.count([paths[:1], [], paths[1:]], ["id"]) == 3
    assert opened == []
    # a group with an overwrite still opens one, and is counted from its rows
    c = [(1, 4, True, True)]
    groups = [[paths[0], write(tmp_path / "c.parquet", c)], paths[1:]]
    assert live_rows.count(groups, ["id"]) == brute([a, c]) + brute([b]) == 2
    assert len(opened) == 1


def test_overwrites_are_counted_from_the_rows(tmp_path: Path) -> None:
    a = [(1, 1, False, False), (2, 2, False, False), (3, 3, False, False)]
    # key 2 updated, key 3 deleted, key 1 deleted then inserted again
    b = [(2, 4, True, False), (3, 5, True, True), (1, 6, True, True), (1, 7, True, False)]
    paths = [write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)]
    # one row group of `b` with an overwrite is enough to read the files
    assert None in [live_rows.first_only_rows(pq.read_metadata(p)) for p in paths]
    assert live_rows.count([paths], ["id"]) == brute([a, b]) == 2
    # a group of first versions only beside it: each group counted its own way
    c = [(7, 8, False, False)]
    other = [write(tmp_path / "c.parquet", c)]
    assert live_rows.count([paths, other], ["id"]) == 3


def test_later_versions_without_their_first_are_counted_not_negative(tmp_path: Path) -> None:
    """A table restored from a backup re-sealed without the file of its first
    versions: first versions (0) less the keys whose newest is a delete (1)
    was -1, and every later BACKUP of the namespace failed its manifest's
    check (found by trying). Then every key's newest version is counted."""
    b = [(2, 4, True, False), (3, 5, True, True), (4, 6, True, False)]
    path = write(tmp_path / "b.parquet", b)
    assert live_rows.count([[path]], ["id"]) == brute([b]) == 2


def test_a_file_without_ow_statistics_is_read(tmp_path: Path) -> None:
    rows = [(1, 1, False, False), (2, 2, False, False)]
    path = tmp_path / "nostats.parquet"
    ids, seqs, ows, dels = zip(*rows, strict=True)
    pq.write_table(pa.table({SEQ: pa.array(seqs, pa.int64()), OW: pa.array(ows, pa.bool_()),
                             "id": pa.array(ids, pa.int64()),
                             DELETED: pa.array(dels, pa.bool_())}),
                   path, write_statistics=False)
    assert live_rows.first_only_rows(pq.read_metadata(path)) is None
    assert live_rows.count([[path]], ["id"]) == 2


def test_only_the_files_with_overwrites_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big table of first versions beside one file of UPDATEs and DELETEs
    (a restore to a time replaying them on its base): the first-version files
    count off their footers, DuckDB reads only the file with overwrites."""
    a = [(1, 1, False, False), (2, 2, False, False), (3, 3, False, False)]
    b = [(4, 4, False, False), (5, 5, False, False)]
    c = [(2, 6, True, False), (3, 7, True, True), (6, 8, False, False), (6, 9, True, True)]
    paths = [write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b),
             write(tmp_path / "c.parquet", c)]
    statements: list[str] = []
    real = live_rows._cursor

    class Spy:
        def __init__(self, con: object) -> None:
            self.con = con

        def execute(self, text: str) -> object:
            statements.append(text)
            return self.con.execute(text)  # type: ignore[attr-defined]

        def close(self) -> None:
            self.con.close()  # type: ignore[attr-defined]

    monkeypatch.setattr(live_rows, "_cursor", lambda: Spy(real()))
    assert live_rows.count([paths], ["id"]) == brute([a, b, c]) == 4
    assert len(statements) == 1
    assert str(paths[2]) in statements[0]
    assert str(paths[0]) not in statements[0] and str(paths[1]) not in statements[0]


def test_counts_share_one_database_and_read_their_files_afresh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A count of files with overwrites opened a DuckDB database of its own
    (~15 ms of CPU to open and close, most of a BACKUP's CPU after a small
    UPDATE): the process keeps one, and each count takes a cursor of it. It
    caches nothing of the files: one rewritten in place between two counts
    is counted as it is now."""
    live_rows.open_database()  # a job process opens it as it starts (jobchild.py)
    opened: list[object] = []
    real = live_rows.duckdb.connect
    monkeypatch.setattr(live_rows.duckdb, "connect",
                        lambda *args, **kw: opened.append(args) or real(*args, **kw))
    a = [(1, 1, False, False), (2, 2, False, False), (3, 3, False, False)]
    b = [(2, 4, True, False), (3, 5, True, True)]
    paths = [write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)]
    assert live_rows.count([paths], ["id"]) == brute([a, b]) == 2
    b2 = [(2, 4, True, True), (3, 5, True, True), (1, 6, True, False)]
    write(paths[1], b2)  # no sha256 given: no footer is remembered either
    assert live_rows.count([paths], ["id"]) == brute([a, b2]) == 1
    assert opened == []
    # it keeps no threads of its own for remote reads (a job process's
    # threads are each read by its starvation samples)
    db = live_rows.open_database()
    assert db.execute("SELECT current_setting('async_threads')").fetchone() == (0,)


def test_file_by_file_agrees_with_brute_force(tmp_path: Path) -> None:
    """Random histories (INSERT, UPDATE, DELETE, re-INSERT) cut into files at
    random points, some of first versions only: the count is the brute force's."""
    import random

    rng = random.Random(13)
    for case in range(25):
        live: dict[int, bool] = {}  # key: live now
        seen: set[int] = set()
        rows: list[tuple[int, int, bool, bool]] = []
        for seq in range(1, rng.randint(2, 60)):
            key = rng.randint(1, 15)
            if key not in seen:
                rows.append((key, seq, False, False))  # a first version
                seen.add(key)
                live[key] = True
            else:
                deleted = live[key] and rng.random() < 0.4  # a DELETE, else UPDATE/re-INSERT
                rows.append((key, seq, True, deleted))
                live[key] = not deleted
        cuts = sorted(rng.sample(range(1, len(rows)), min(3, len(rows) - 1)))
        files = [rows[i:j] for i, j in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
        paths = [write(tmp_path / f"{case}-{i}.parquet", f, rng.choice([1, 2, 100]))
                 for i, f in enumerate(files)]
        assert live_rows.count([paths], ["id"]) == brute(files) == sum(live.values()), case


def test_a_footer_is_read_once_per_file_content(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With the files' sha256 given, what a footer said is remembered (a job
    process counts the same flushed files at every BACKUP): the second count
    reads no footer and agrees; a file with overwrites is still scanned; an
    unreadable file is not remembered; files without a sha256 are read; a
    file changed in place is read again."""
    import hashlib

    monkeypatch.setattr(live_rows, "_FOOTERS", {})
    a = [(1, 1, False, False), (2, 2, False, False), (3, 3, False, False)]
    b = [(4, 4, False, False), (2, 5, True, True)]  # deletes key 2
    paths = [write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)]
    oids = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    reads: list[Path] = []
    real = pq.read_metadata
    monkeypatch.setattr(live_rows.pq, "read_metadata",
                        lambda p, *a, **k: (reads.append(Path(p)), real(p, *a, **k))[1])
    expected = brute([a, b])
    assert live_rows.count([paths], ["id"], oids) == expected == 3
    assert sorted(reads) == sorted(paths)
    reads.clear()
    assert live_rows.count([paths], ["id"], oids) == expected
    assert reads == []
    assert live_rows.count([paths], ["id"]) == expected and len(reads) == 2
    gone = tmp_path / "gone.parquet"
    reads.clear()
    import duckdb

    with pytest.raises(duckdb.Error):
        live_rows.count([[gone]], ["id"], {gone: "0" * 64})
    assert not any(key[0] == "0" * 64 for key in live_rows._FOOTERS)
    # A file changed in place and put back is read again, not answered for
    # by what it said while changed (its sha256 is the key's, not its bytes').
    good = paths[0].read_bytes()
    write(paths[0], [(1, 1, False, False), (1, 2, True, True)])  # now a delete
    assert live_rows.count([[paths[0]]], ["id"], {paths[0]: oids[paths[0]]}) == 0
    paths[0].write_bytes(good)
    reads.clear()
    assert live_rows.count([[paths[0]]], ["id"], {paths[0]: oids[paths[0]]}) == 3
    assert reads == [paths[0]]


def test_a_footer_as_written_is_the_footer_as_read(tmp_path: Path) -> None:
    """A snapshot's export gives its file's answer from the metadata its
    writer collected (storage/files.py write_data_file `footer`), so it must
    say what reading the footer says."""
    from storage.files import write_data_file

    for rows in ([(1, 1, False, False), (2, 2, False, False)],
                 [(1, 1, False, False), (1, 2, True, False)]):
        ids, seqs, ows, dels = zip(*rows, strict=True)
        table = pa.table({SEQ: pa.array(seqs, pa.int64()), OW: pa.array(ows, pa.bool_()),
                          "id": pa.array(ids, pa.int64()), DELETED: pa.array(dels, pa.bool_())})
        footer: list[pq.FileMetaData] = []
        path = tmp_path / f"{len(rows)}-{rows[1][2]}.parquet"
        write_data_file(path, table, {}, sync=False, footer=footer)
        assert len(footer) == 1
        assert live_rows.first_only_rows(footer[0]) == live_rows.first_only_rows(
            pq.read_metadata(path))
        assert live_rows.first_only_rows(footer[0]) == (2 if not rows[1][2] else None)
