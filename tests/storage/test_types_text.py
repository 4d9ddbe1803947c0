"""A value that is not text written into a TEXT column is DuckDB's
CAST(value AS VARCHAR) of it (storage.types.coerce): a time was Python's
isoformat, '2024-06-01 12:00:00.500000' where DuckDB (and so a query
comparing with it) has '2024-06-01 12:00:00.5'."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import duckdb
import pytest

from catalog.errors import InvalidArgument
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


def _time_texts() -> list[str]:
    """Dates, separators, times, zones and blanks in seeded combinations:
    the ISO forms Python's fromisoformat reads and DuckDB's CAST does not
    ('20240601', '2024-W23-6', an hour alone, '12:00:00,5'), next to the forms
    both read."""
    days = ["2024-06-01", "20240601", "2024-W23-6", "2024W236", "2024-6-1", "0001-01-01",
            "2024-02-29", "2023-02-29"]
    seps = ["T", " ", "t", "  ", "\t", "", "\n", "T "]
    times = ["", "12", "12:00", "1200", "12:00:00", "120000", "12:00:00.5", "12:00:00,5",
             "12:00:00.1234567", "12:00:00.9999995", "24:00:00", "12:00:00.", "1:2:3"]
    zones = ["", "Z", "z", "+00", "+00:00", "+0000", "-00:00", "+05:30", " Z", " +00:00",
             "+00:00:00", " UTC"]
    pads = ["", " ", "\t", "\n", "\x1c", "\x0b"]
    rng = random.Random(9)
    texts = sorted({rng.choice(pads) + d + (s + t + z if t else "") + rng.choice(pads)
                    for d in days for s in seps for t in times for z in zones})
    return rng.sample(texts, 1500)


@pytest.mark.parametrize("kind", ["DATE", "TIMESTAMP"])
def test_date_and_time_text_is_stored_only_as_the_cast_reads_it(kind: str) -> None:
    """Every text `coerce` takes, DuckDB's CAST (what a WHERE compares with)
    takes to the same value; the rest is INVALID_ARGUMENT naming the column."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    taken = 0
    for text in _time_texts():
        try:
            mine = coerce({"name": "c", "type": kind}, text)
        except InvalidArgument as exc:
            assert "Column 'c'" in exc.message, (text, exc.message)
            continue
        got = con.execute(f"SELECT TRY_CAST(? AS {kind})", [text]).fetchone()
        assert got is not None and got[0] == mine, text
        taken += 1
    assert taken > 50  # the plain forms are read
