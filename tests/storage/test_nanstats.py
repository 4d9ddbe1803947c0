"""storage/nanstats.py on files made here: which files hide NaN rows, and a
rewrite that keeps every row, holds a row group at a time and writes no
statistics for the columns holding NaN."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import Catalog, DataFile, Meta
from storage import nanstats
from storage.files import NAN_RULE, FileStore, write_data_file

UID = "tbl-0000000000000000000a"


def older_file(path: Path, rows: int = 20_000, group: int = 700) -> pa.Table:
    """As a flush before 2026-12-06 wrote it (statistics for every column),
    in small row groups; one NaN in `x`, none in `y`."""
    x = [float(i) for i in range(rows)]
    x[rows // 2] = math.nan
    table = pa.table({"k": pa.array(range(rows), pa.int64()), "x": x,
                      "y": pa.array([0.5] * rows, pa.float32()), "s": ["v"] * rows})
    table = table.replace_schema_metadata({b"cairn.schema_version": b"1"})
    pq.write_table(table, path, row_group_size=group, compression="zstd")
    return table


def test_which_files_hide_nan_rows(tmp_path: Path) -> None:
    older_file(tmp_path / "old.parquet")
    assert nanstats.hides_nan(tmp_path / "old.parquet")
    plain = pa.table({"k": [1, 2], "x": [1.0, 2.0]})
    pq.write_table(plain, tmp_path / "no_nan.parquet")
    assert not nanstats.hides_nan(tmp_path / "no_nan.parquet")
    pq.write_table(pa.table({"k": [1], "s": ["a"]}), tmp_path / "no_float.parquet")
    assert not nanstats.hides_nan(tmp_path / "no_float.parquet")
    with_nan = pa.table({"k": [1, 2], "x": [1.0, math.nan]})
    pq.write_table(with_nan, tmp_path / "no_stats.parquet", write_statistics=["k"])
    assert not nanstats.hides_nan(tmp_path / "no_stats.parquet")
    write_data_file(tmp_path / "now.parquet", with_nan, {})  # today's flush
    assert not nanstats.hides_nan(tmp_path / "now.parquet")
    # A file saying it was written by the rule is taken at its word.
    pq.write_table(with_nan.replace_schema_metadata(NAN_RULE), tmp_path / "claims.parquet")
    assert not nanstats.hides_nan(tmp_path / "claims.parquet")


def test_a_rewrite_keeps_every_row_and_drops_only_the_nan_columns_statistics(
        tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data")
    _, rel, src = files.place(UID)
    table = older_file(src)
    size = src.stat().st_size
    rec = DataFile(table_uid=UID, file_id=rel.split("/")[2][:-8], path=rel, rows=table.num_rows,
                   bytes=size, sha256="0" * 64, schema_version=1, min_seq=3, max_seq=9)
    new = nanstats.rewrite(files, rec)
    path = files.abs(new.path)
    assert new.path != rel and src.exists()  # the old file is the caller's to remove
    assert (new.rows, new.min_seq, new.max_seq) == (rec.rows, 3, 9)
    assert new.bytes == path.stat().st_size
    assert new.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    again = pq.read_table(path)
    assert again.schema.equals(table.schema, check_metadata=True)
    assert repr(again.to_pylist()) == repr(table.to_pylist())
    before, after = pq.ParquetFile(src).metadata, pq.ParquetFile(path).metadata
    old_bytes = src.read_bytes()
    body = len(old_bytes) - 8 - int.from_bytes(old_bytes[-8:-4], "little")  # the pages
    assert path.read_bytes()[:body] == old_bytes[:body] and new.bytes < len(old_bytes)
    assert [after.row_group(g).num_rows for g in range(after.num_row_groups)] == \
        [before.row_group(g).num_rows for g in range(before.num_row_groups)]
    names = [after.schema.column(c).name for c in range(after.num_columns)]
    for g in range(after.num_row_groups):
        stats = {n: after.row_group(g).column(c).is_stats_set for c, n in enumerate(names)}
        assert stats == {"k": True, "x": False, "y": True, "s": True}, stats
        assert after.row_group(g).column(0).statistics == before.row_group(g).column(0).statistics
    assert not nanstats.hides_nan(path)


def test_a_data_directory_is_mended_once_and_a_bad_file_does_not_stop_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = FileStore(tmp_path / "data")
    catalog = Catalog(tmp_path / "data" / "catalog")
    recs = []
    for i in range(3):
        file_id, rel, path = files.place(UID)
        if i == 2:
            path.write_bytes(b"not parquet")
        else:
            older_file(path, rows=3000)
        recs.append(DataFile(table_uid=UID, file_id=file_id, path=rel, rows=3000,
                             bytes=path.stat().st_size, sha256="0" * 64, schema_version=1))
        catalog.put(recs[-1])
    try:
        assert nanstats.mend_data_dir(catalog, files) == 2
        assert "could not be checked for NaN statistics" in caplog.text
        now = {f.path: f for f in catalog.scan(DataFile)}
        assert len(now) == 3 and recs[2].path in now
        assert not (files.abs(recs[0].path).exists() or files.abs(recs[1].path).exists())
        assert not any(nanstats.hides_nan(files.abs(p)) for p in now if p != recs[2].path)
        assert catalog.get(Meta, nanstats.MARK) is not None
        catalog.delete(DataFile, recs[2].key())
        _, rel, path = files.place(UID)
        older_file(path, rows=10)
        catalog.put(DataFile(table_uid=UID, file_id="f-x", path=rel, rows=10, bytes=1,
                             sha256="0" * 64, schema_version=1))
        assert nanstats.mend_data_dir(catalog, files) == 0  # marked: not again
    finally:
        catalog.close()
