"""The private DuckDB that spells written values (storage/spelling.py): a
HUGEINT reaches it from a query's answer as a decimal128(38, 0), and its cast
of -2^127 there (a DECIMAL(38,0) past 38 digits) is an internal error after
which DuckDB refuses every query of that database: every later TEXT and JSON
write of the server failed until it restarted."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from storage import spelling

LEAST = -(1 << 127)


def _answer(sql: str) -> pa.ChunkedArray:
    got = duckdb.connect().sql(sql).arrow()
    table = got.read_all() if isinstance(got, pa.RecordBatchReader) else got
    return table.column(0)


def test_an_internal_error_leaves_no_invalid_database_behind() -> None:
    column = _answer(f"SELECT {LEAST} AS h")
    assert column.type == pa.decimal128(38, 0)
    with pytest.raises(duckdb.Error):  # what json_column no longer asks
        spelling._run("SELECT CAST(CAST(c AS VARCHAR) AS VARCHAR) FROM v", pa.table({"c": column}))
    assert spelling.spelled("0.3125e1", "VARCHAR") == "3.125"
    assert spelling.json_column(_answer("SELECT 2.5 AS d"), "VARCHAR").to_pylist() == ["2.5"]


def test_the_least_hugeint_is_spelled_as_its_digits() -> None:
    for to in ("VARCHAR", "JSON"):
        got = spelling.json_column(_answer(f"SELECT {LEAST} AS h UNION ALL SELECT -5 "
                                           "UNION ALL SELECT NULL ORDER BY 1"), to)
        assert got.to_pylist() == [str(LEAST), "-5", None]
    for sql in (f"SELECT [{LEAST}, 1] AS l", f"SELECT {{'a': {LEAST}}} AS s",
                f"SELECT MAP {{1: {LEAST}}} AS m"):
        with pytest.raises(ValueError, match="least HUGEINT"):
            spelling.json_column(_answer(sql), "JSON")
    assert spelling.json_column(_answer(f"SELECT [{LEAST + 1}] AS l"), "JSON").to_pylist() == [
        f"[{LEAST + 1}]"]
