"""storage/backup/page_stats.py: each data page's statistics against the
page's own values, pages cut anywhere by the batches read
(tests/e2e/test_backup_page_stats.py has a backup end to end)."""

from __future__ import annotations

import io
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.backup import page_headers, page_stats
from tests.parquet_footer import _In, edit_page_header, get, put

N = 3_000


def _file() -> bytes:
    t = pa.table({"id": pa.array(range(N), pa.int64()),
                  "w": pa.array([None if i % 3 == 0 else f"w{i:05d}" for i in range(N)]),
                  "dec": pa.array([Decimal(i) - Decimal("12345678901234567890.5")
                                   for i in range(N)], pa.decimal128(38, 10)),
                  "day": pa.array(range(N), pa.date32()),
                  "b": pa.array([i % 3 == 0 for i in range(N)])})
    out = io.BytesIO()
    pq.write_table(t, out, compression="none", use_dictionary=False, data_page_size=2_000,
                   write_batch_size=100, row_group_size=2_000)
    return out.getvalue()


def _problem(path: Path, plain_rows: int = 0) -> str | None:
    meta = pq.read_metadata(path)
    stats: page_stats.Pages = {}
    assert page_headers.problem(str(path), meta, stats) is None
    assert any(len(said) > 1 for said in stats.values())  # chunks of several pages
    plain = ("w",) if plain_rows else ()
    return page_stats.problem(str(path), meta, stats, (), plain,
                              (plain_rows,) * meta.num_row_groups)


@pytest.mark.parametrize("plain_rows", [0, 7])
def test_pages_as_pyarrow_writes_them_pass(tmp_path: Path, plain_rows: int) -> None:
    path = tmp_path / "f.parquet"
    path.write_bytes(_file())
    assert _problem(path, plain_rows) is None


def _second_page(data: bytes, column: int, change: Any) -> bytes:
    meta = pq.read_metadata(pa.BufferReader(data))
    reader = _In(data)
    reader.at = meta.row_group(1).column(column).data_page_offset
    header = reader.struct()
    return edit_page_header(data, reader.at + get(header, 3), change)


def test_a_later_page_whose_statistics_leave_out_its_values_is_refused(tmp_path: Path) -> None:
    def forge(header: list[Any]) -> None:
        stats = get(get(header, 5), 5)
        put(stats, 6, 8, struct.pack("<q", 10**9))  # min_value
        put(stats, 5, 8, struct.pack("<q", 10**9 + 1))  # max_value

    path = tmp_path / "f.parquet"
    path.write_bytes(_second_page(_file(), 0, forge))
    wrong = _problem(path)
    assert wrong is not None and "column 'id' of row group 1 (its page 1)" in wrong, wrong
    assert "min 1000000000" in wrong, wrong


def test_a_page_miscounting_its_nulls_is_refused(tmp_path: Path) -> None:
    def forge(header: list[Any]) -> None:
        stats = get(get(header, 5), 5)
        put(stats, 3, 6, get(stats, 3) + 1)  # null_count (one byte longer or not: same here)

    path = tmp_path / "f.parquet"
    path.write_bytes(_second_page(_file(), 1, forge))
    wrong = _problem(path, 7)
    assert wrong is not None and "column 'w' of row group 1 (its page 1)" in wrong, wrong
    assert "NULL values" in wrong, wrong


def test_a_page_whose_bounds_leave_out_its_nan_is_refused_where_the_file_says_none_are(
        tmp_path: Path) -> None:
    """pyarrow's page bounds leave NaN out (DuckDB, given the chunk's footer
    bounds too, skipped such a page for `isnan(x)`): a file saying it writes
    no bounds of a column holding NaN (files.NAN_RULE, every file Cairn
    writes) may not have them on its pages either (a guard: DuckDB 2.0 reads
    no page's bounds in a chunk without footer bounds); an older file's,
    which say nothing, stay as they were written."""
    t = pa.table({"x": pa.array([float("nan") if i == 2_500 else i % 7 / 2 for i in range(N)])})
    path = tmp_path / "f.parquet"
    pq.write_table(t, path, compression="none", use_dictionary=False, data_page_size=2_000,
                   write_batch_size=100, row_group_size=2_000)
    meta = pq.read_metadata(path)
    stats: page_stats.Pages = {}
    assert page_headers.problem(str(path), meta, stats) is None
    wrong = page_stats.problem(str(path), meta, stats, nan_rule=True)
    assert wrong is not None and "column 'x' of row group 1 (its page " in wrong, wrong
    assert "leaves out the NaN it holds" in wrong, wrong
    assert page_stats.problem(str(path), meta, stats) is None


def _longer(stats: list[Any], field: int) -> None:
    raw = get(stats, field)
    put(stats, field, 8, (b"\xff" if raw[0] & 0x80 else b"\x00") + raw)  # the same number


def _bool_two(header: list[Any]) -> None:
    stats = get(get(header, 5), 5)
    put(stats, 6, 8, b"\x02")  # min_value: bit 0 false; to DuckDB true
    put(stats, 2, 8, b"\x02")  # min


def _decimal_wider(header: list[Any]) -> None:
    stats = get(get(header, 5), 5)
    _longer(stats, 5)  # max_value, a byte wider than DECIMAL(38, 10)'s 16
    _longer(stats, 1)  # max
    stats[:] = [f for f in stats if f[0] != 3]  # (its null count: the header's length kept)


@pytest.mark.parametrize("column, change, bound", [("b", _bool_two, "min"),
                                                   ("dec", _decimal_wider, "max")])
def test_a_statistic_the_two_readers_decode_differently_is_refused(
        tmp_path: Path, column: str, change: Any, bound: str) -> None:
    """A BOOLEAN page's minimum of 0x02 was false here (its bit 0) and true to
    DuckDB, which skipped the page's false values for `WHERE b = false`
    (VERIFY valid, RESTORE completed, the rows gone from the query and from
    UPDATE and DELETE); a DECIMAL's of 17 bytes (DuckDB: "Invalid decimal
    encoding", every filtered query of the column failing) bounded its values
    here. Cairn's writer writes a BOOLEAN's 0 or 1 and a type's width."""
    data = _file()
    meta = pq.read_metadata(pa.BufferReader(data))
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    first = meta.row_group(0).column(names.index(column)).data_page_offset
    path = tmp_path / "f.parquet"
    path.write_bytes(edit_page_header(data, first, change))
    wrong = _problem(path)
    assert wrong is not None and f"column '{column}' of row group 0 (its page 0)" in wrong, wrong
    assert f"gives a {bound} statistic that does not decode as Cairn's writer" in wrong, wrong
