"""storage/footer_stats.py: a Parquet footer's Thrift walked and written
again. Taking nothing out gives the same bytes back, for footers of many
shapes pyarrow writes; taking a column's statistics out leaves everything
else as pyarrow reads it; damaged footers raise FooterError, nothing else."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import footer_stats
from storage.footer_stats import FooterError, without_statistics


def parquet(table: pa.Table, **kw: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kw)  # type: ignore[arg-type]
    return sink.getvalue()


def footer_of(data: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length:-8]


def with_footer(data: bytes, footer: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[:-8 - length] + footer + len(footer).to_bytes(4, "little") + b"PAR1"


WIDE = pa.table({
    "i": pa.array(range(3000), pa.int64()),
    "f": pa.array([float(i) / 3 for i in range(3000)], pa.float32()),
    "d": pa.array([decimal.Decimal(i).scaleb(-3) for i in range(3000)], pa.decimal128(20, 6)),
    "t": pa.array([dt.datetime(2020, 1, 1, tzinfo=dt.UTC)] * 3000, pa.timestamp("us", tz="UTC")),
    "s": [("x" * (i % 50)) if i % 7 else None for i in range(3000)],
    "b": pa.array([bytes([i % 256]) * 5000 for i in range(3000)], pa.binary()),  # past 4 KiB stats
    "o": [i % 2 == 0 for i in range(3000)],
}).replace_schema_metadata({b"cairn.schema_version": b"3"})

SHAPES = {
    "wide, small row groups": (WIDE, {"row_group_size": 100}),
    "no statistics": (WIDE, {"write_statistics": False}),
    "page index and dictionaries off": (WIDE, {"write_page_index": True, "use_dictionary": False}),
    "one column, one row": (pa.table({"x": [1.5]}), {}),
    "empty": (pa.table({"x": pa.array([], pa.float64())}), {}),
    "many columns": (pa.table({f"c{i}": [float(i)] for i in range(300)}), {}),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_taking_nothing_out_gives_the_same_footer(shape: str) -> None:
    table, kw = SHAPES[shape]
    footer = footer_of(parquet(table, **kw))
    assert without_statistics(footer, set()) == footer


@pytest.mark.parametrize("shape", SHAPES)
def test_taking_a_columns_statistics_out_changes_nothing_else(shape: str) -> None:
    table, kw = SHAPES[shape]
    data = parquet(table, **kw)
    gone = {0, table.num_columns - 1}
    changed = with_footer(data, without_statistics(footer_of(data), gone))
    before = pq.ParquetFile(io.BytesIO(data)).metadata
    after = pq.ParquetFile(io.BytesIO(changed)).metadata
    assert after.schema.equals(before.schema) and after.metadata == before.metadata
    assert after.num_rows == before.num_rows and after.num_row_groups == before.num_row_groups
    for g in range(after.num_row_groups):
        for c in range(after.num_columns):
            was, now = before.row_group(g).column(c), after.row_group(g).column(c)
            assert (now.data_page_offset, now.total_compressed_size, now.encodings) == \
                (was.data_page_offset, was.total_compressed_size, was.encodings)
            if c in gone:
                assert not now.is_stats_set
            else:
                assert now.is_stats_set == was.is_stats_set
                assert now.statistics == was.statistics
    read = pq.read_table(io.BytesIO(changed))
    assert read.equals(table)


@pytest.mark.parametrize("shape", ["wide, small row groups", "many columns"])
def test_every_field_of_a_footer_is_read_once(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value a walk rewrites or reads into (the row groups, their column
    chunks, a chunk's metadata, the key-value pairs) is walked once, not
    skipped over first and then walked: as many field headers read as a
    plain skip of the footer reads, by without_statistics and float_min_max."""
    table, kw = SHAPES[shape]
    footer = footer_of(parquet(table, **kw))
    reads = [0]
    real = footer_stats._field

    def counted(buf: bytes, pos: int, last: int) -> tuple[int, int, int]:
        reads[0] += 1
        return real(buf, pos, last)

    monkeypatch.setattr(footer_stats, "_field", counted)
    footer_stats._skip(footer, 0, 12)  # the whole FileMetaData struct
    once, reads[0] = reads[0], 0
    without_statistics(footer, set(range(table.num_columns)))
    assert reads[0] == once
    reads[0] = 0
    assert footer_stats.float_min_max(footer)[1]  # WIDE's "f", every one of "many columns"
    assert reads[0] == once


def test_damaged_footers_raise_footer_error_only() -> None:
    footer = footer_of(parquet(WIDE, row_group_size=500))
    rng = random.Random(15)
    raised = 0
    for _ in range(3000):
        bad = bytearray(footer)
        how = rng.random()
        if how < 0.3:
            bad = bad[:rng.randrange(len(bad))]
        elif how < 0.9:
            for _ in range(rng.randint(1, 4)):
                bad[rng.randrange(len(bad))] = rng.randrange(256)
        else:
            bad += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        try:
            without_statistics(bytes(bad), {1, 3})
        except FooterError:
            raised += 1
    assert raised > 1000  # most damage is seen; none raised anything else


def test_a_footer_nested_deep_is_refused() -> None:
    # field 1 of FileMetaData as a struct holding a struct holding ... (type 12).
    deep = bytes([0x1C] * 5000) + bytes(5000)
    with pytest.raises(FooterError):
        without_statistics(deep, {0})


def test_a_list_longer_than_the_footer_is_refused_at_once() -> None:
    # FileMetaData field 2 a list of 2^60 doubles (type 7), in 11 bytes.
    huge = bytes([0x29, 0xF7]) + bytes([0xFF] * 8) + bytes([0x10])
    with pytest.raises(FooterError):
        without_statistics(huge, {0})
