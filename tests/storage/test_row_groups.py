"""Flushed Parquet files keep each row group under ROW_GROUP_BYTES (DuckDB
reads a column chunk whole, so one huge row group set the server's peak RSS)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import DataFile
from storage import files
from storage.engine import Engine

from .conftest import col


def test_wide_rows_get_several_row_groups(engine: Engine) -> None:
    t = engine.create_table("app", "w", "shared", [col("id", "BIGINT", primary_key=True),
                                                    col("b", "BYTES")])
    assert t is not None
    n = 40_000
    engine.insert_arrow("app", "w", pa.table({"id": pa.array(range(n), pa.int64()),
                                              "b": [b"x" * 1000] * n}))
    engine.insert_arrow("app", "w", pa.table({"id": pa.array(range(n, n + 10), pa.int64()),
                                              "b": [b"y"] * 10}))
    engine.flush_table("app", "w")
    [f] = engine.catalog.scan(DataFile, t.uid)
    meta = pq.ParquetFile(engine.files.abs(f.path)).metadata
    assert meta.num_rows == n + 10
    assert meta.num_row_groups >= 3  # ~40 MB of rows
    assert all(meta.row_group(g).total_byte_size <= 1.5 * files.ROW_GROUP_BYTES
               for g in range(meta.num_row_groups))


def test_narrow_rows_stay_in_one_row_group() -> None:
    rows = pa.table({"a": pa.array(range(100_000), pa.int64())})
    assert files.row_group_rows(rows) == files.ROW_GROUP_ROWS


def test_a_data_file_is_written_and_hashed_a_mib_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parquet's writer writes each page and header: through Arrow's buffer
    the hashing writer (which takes the GIL) sees a write a MiB, not ~20 for
    these 10,000 rows; the bytes, their sha256 and size are what lands."""
    writes: list[int] = []
    real = files._HashingWriter.write

    def counted(self: files._HashingWriter, data: Any) -> int:
        writes.append(memoryview(data).nbytes)
        return real(self, data)

    monkeypatch.setattr(files._HashingWriter, "write", counted)
    n = 10_000
    rows = pa.table({"id": pa.array(range(n), pa.int64()),
                     "v": [f"{i:x}" * 20 for i in range(n)],
                     "flag": [i % 3 == 0 for i in range(n)]})
    store = files.FileStore(tmp_path / "data")
    path = tmp_path / "data" / "tmp" / "one.parquet"
    size, sha = store.write_at(path, rows, {b"cairn.schema_version": b"1"})
    data = path.read_bytes()
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert pq.read_table(path).equals(rows.replace_schema_metadata({b"cairn.schema_version": b"1"}))
    assert len(writes) == -(-size // files.WRITE_BUFFER)  # a MiB a write (this file is < 1 MiB)
    assert sum(writes) == size
