"""footers.bound, the one rule for how large a backed-up file's footer may
be: its row groups bounded by its entry's rows and by MAX_CHUNKS, its schema
by its entry's columns, BACKUP's refusal (`refusal`) the same as RESTORE's
and VERIFY's (contents.problem)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.manifests import column, table_entry
from storage.backup import contents, copyloop, footers
from storage.backup.schema import FileEntry, TableEntry
from storage.files import MIN_ROW_GROUP_ROWS, write_data_file


def _file(tmp_path: Path, n: int, group: int) -> Path:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({
        "_seq": pa.array(np.arange(1, n + 1), pa.int64()), "_ow": pa.array(np.zeros(n, bool)),
        "k": pa.array(np.arange(n), pa.int32()),
        "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
        "_deleted": pa.array(np.zeros(n, bool))}), path, compression="zstd",
        row_group_size=group)
    return path


def _entry(path: Path, rows: int) -> tuple[TableEntry, FileEntry]:
    entry = table_entry("t", [{"oid": "0" * 64, "size": path.stat().st_size, "rows": rows,
                               "min_seq": 1, "max_seq": rows}],
                        [[column("k", "INT", key=True)]])
    t = msgspec.convert(entry, TableEntry)
    return t, t.files[0]


def _problem(path: Path, t: TableEntry, f: FileEntry) -> str | None:
    return contents.problem(contents.tail_of(str(path), footers.bound(t, f).tail), f, t)


def test_row_groups_are_bounded_by_the_entrys_rows_and_by_max_chunks(
        tmp_path: Path, monkeypatch: Any) -> None:
    n = 2 * MIN_ROW_GROUP_ROWS + 1
    path = _file(tmp_path, n, MIN_ROW_GROUP_ROWS)  # 3 row groups, as Cairn's writer may
    t, f = _entry(path, n)
    assert footers.bound(t, f).groups == 3 and footers.bound(t, f).columns == 5
    assert _problem(path, t, f) is None
    assert footers.refusal(t, f, path, None) is None
    # Row groups of fewer rows than Cairn's writer makes: more than its rows fill.
    path = _file(tmp_path, n, 100)
    wrong = _problem(path, t, f)
    assert wrong is not None and "21 row groups, more than a file of its rows holds (3)" in wrong
    # What a restore decodes at most (here made 2 row groups of 5 columns):
    # refused by the restore, and by BACKUP first, from the file itself.
    path = _file(tmp_path, n, MIN_ROW_GROUP_ROWS)
    monkeypatch.setattr(footers, "MAX_CHUNKS", 10)
    wrong = _problem(path, t, f)
    assert wrong is not None and "3 row groups, more than a file of its rows holds (2)" in wrong
    said = footers.refusal(t, f, path, None)
    assert said == footers.refusal(t, f, path, path.read_bytes())
    assert said is not None and "has 3 row groups, 15 column chunks, over the 10" in said, said


def test_a_footer_of_other_columns_than_its_entrys_is_refused_before_pyarrow(
        tmp_path: Path) -> None:
    path = _file(tmp_path, 3, MIN_ROW_GROUP_ROWS)
    entry = table_entry("t", [{"oid": "0" * 64, "size": path.stat().st_size, "rows": 3,
                               "min_seq": 1, "max_seq": 3}],
                        [[column("k", "INT", key=True), column("v", "INT")]])
    t = msgspec.convert(entry, TableEntry)
    wrong = _problem(path, t, t.files[0])
    assert wrong is not None and "has 5 columns, its table's file 6" in wrong, wrong


def test_the_widest_table_of_cairns_fits_its_bound(tmp_path: Path) -> None:
    """4,096 columns of TEXT values as long as Arrow keeps in statistics: one
    row's footer is ~34 MB, within its bound (and MAX_BYTES)."""
    cols = [column("k", "INT", key=True)] + [column(f"c{i}", "TEXT") for i in range(4093)]
    d: dict[str, Any] = {"_seq": pa.array([1], pa.int64()), "_ow": pa.array([False]),
                         "k": pa.array([1], pa.int32())}
    for i in range(1, 4094):
        d[f"c{i - 1}"] = pa.array([f"{i:04d}" * 1024])  # 4,096 bytes: min and max kept
    d["_updated"] = pa.array([0], pa.timestamp("us"))
    d["_deleted"] = pa.array([False])
    path = tmp_path / "wide.parquet"
    write_data_file(path, pa.table(d), {b"cairn.schema_version": b"1"}, sync=False)
    entry = table_entry("t", [{"oid": "0" * 64, "size": path.stat().st_size, "rows": 1,
                               "min_seq": 1, "max_seq": 1}], [cols])
    t = msgspec.convert(entry, TableEntry)
    f = t.files[0]
    size = int.from_bytes(path.read_bytes()[-8:-4], "little")
    assert 32 << 20 < size <= footers.bound(t, f).bytes, size
    assert footers.refusal(t, f, path, None) is None
    assert _problem(path, t, f) is None


def test_a_copier_keeps_as_much_as_a_footer_may_take() -> None:
    assert footers.MAX_BYTES + 8 <= copyloop.MAX_KEEP


def test_a_flush_part_whose_footer_is_past_the_bound_is_written_again_in_halves(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Row groups of long TEXT values: each holds their min and max in the
    footer, so a file of many row groups can pass MAX_BYTES (here made the
    size of one row group's footer and a half): it is written in halves."""
    from storage import fileparts, files

    monkeypatch.setattr(files, "ROW_GROUP_BYTES", 1)  # row groups of MIN_ROW_GROUP_ROWS
    n = 3000
    rows = pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()),
                     "v": pa.array([f"{i:06d}" * 300 for i in range(n)])})

    names = iter(range(100))

    def write(part: pa.Table) -> Path:
        path = tmp_path / f"p{next(names)}.parquet"
        write_data_file(path, part, {}, sync=False)
        return path

    one = fileparts.footer_of(str(write(rows.slice(0, 10))))
    monkeypatch.setattr(footers, "MAX_BYTES", one * 3 // 2)
    discarded: list[Path] = []
    out = list(fileparts.write_parts(rows, write, lambda p: fileparts.footer_of(str(p)),
                                     lambda p: discarded.append(p) or p.unlink()))
    assert [part.num_rows for part, _ in out] == [750] * 4  # 3000 -> 1500 (2 groups) -> 750
    assert len(discarded) == 3 and not any(p.exists() for p in discarded)
    for part, path in out:
        assert fileparts.footer_of(str(path)) <= footers.MAX_BYTES
        assert pq.read_table(path).equals(part)
    assert pa.concat_tables([part for part, _ in out]).equals(rows)
    # A part no footer of which can pass the bound is not read back (a flush's usual case).
    monkeypatch.setattr(footers, "MAX_BYTES", (64 << 20) - 8)

    def unread(p: Path) -> int:
        raise AssertionError(f"{p}'s footer read back")

    assert len(list(fileparts.write_parts(rows, write, unread, unread))) == 1


def test_a_footer_that_says_its_schema_twice_is_refused(tmp_path: Path) -> None:
    """Its row groups are checked as they come, against the schema before
    them: a second schema after them (pyarrow reads the last) is refused."""
    from tests.parquet_footer import edit, get

    path = _file(tmp_path, 3, MIN_ROW_GROUP_ROWS)
    t, f = _entry(path, 3)

    def twice(meta: list[Any]) -> None:
        meta.append([2, 9, get(meta, 2)])  # (the editor writes fields in id order)

    forged = tmp_path / "twice.parquet"
    forged.write_bytes(edit(path.read_bytes(), twice))
    wrong = _problem(forged, t, f)
    assert wrong is not None and "holds its field 2 twice" in wrong, wrong
