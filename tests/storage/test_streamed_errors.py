"""An error DuckDB raises while an answer streams (pyarrow hands it on as an
OSError) is raised as DuckDB's own error, as for the first batch."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from storage import duck


def test_a_streamed_error_is_duckdbs() -> None:
    cur = duckdb.connect().cursor()
    with pytest.raises(duckdb.InvalidInputException, match="Division by zero"):
        duck.fetch_bounded(cur, "SELECT 1 // (range - 200000) FROM range(300000)", None, None)
    table, cut = duck.fetch_bounded(cur, "SELECT * FROM range(300000)", None, None)
    assert table.num_rows == 300000 and not cut


def test_the_kind_comes_from_the_message() -> None:
    assert isinstance(duck.streamed_error(OSError("INTERRUPT Error: Interrupted!")),
                      duckdb.InterruptException)  # the engine's timeout / cancel answer
    assert isinstance(duck.streamed_error(OSError("Out of Memory Error: x")),
                      duckdb.OutOfMemoryException)
    assert isinstance(duck.streamed_error(pa.ArrowInvalid("Conversion Error: x")),
                      duckdb.InvalidInputException)
    other = pa.ArrowInvalid("nested too deep")
    assert duck.streamed_error(other) is other
