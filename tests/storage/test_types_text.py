"""A value that is not text written into a TEXT column is DuckDB's
CAST(value AS VARCHAR) of it (storage.types.coerce): a time was Python's
isoformat, '2024-06-01 12:00:00.500000' where DuckDB (and so a query
comparing with it) has '2024-06-01 12:00:00.5'."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from storage.types import coerce

ZONE = dt.timezone(dt.timedelta(hours=5, minutes=30))


@pytest.mark.parametrize("value", [
    dt.datetime(2024, 6, 1, 12, 0, 0, 500000), dt.datetime(2024, 6, 1, 12),
    dt.datetime(2024, 6, 1, 12, 0, 0, 123456), dt.datetime(999, 6, 1, 12, 0, 0, 120000),
    dt.datetime(2024, 6, 1, 12, 0, 0, 500000, tzinfo=ZONE), dt.date(999, 1, 2),
    1e20, 1e16, 1e15, 0.1, 1e-5, 100000.0, -0.0, True, 12])
def test_a_value_into_text_is_duckdbs_text_of_it(value: Any) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    want = con.execute("SELECT CAST(? AS VARCHAR)", [value]).fetchone()
    assert want is not None
    assert coerce({"name": "t", "type": "TEXT"}, value) == want[0]
