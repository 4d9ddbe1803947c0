"""Flushed Parquet files keep each row group under ROW_GROUP_BYTES (DuckDB
reads a column chunk whole, so one huge row group set the server's peak RSS)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

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
