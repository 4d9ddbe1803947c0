"""Dates and times outside Python's years as text (server/wide_dates.py)."""

from __future__ import annotations

import datetime as dt

from server.wide_dates import date_text, timestamp_text

EPOCH = dt.datetime(1970, 1, 1)


def test_within_pythons_years_the_text_is_isoformat() -> None:
    for days in (-719162, -1, 0, 1, 10957, 2932896, 11016, 19358, -25567, 103):
        assert date_text(days) == (EPOCH.date() + dt.timedelta(days)).isoformat()
    for us in (0, -1, 1_999, -86_400_000_001, 253402300799999999, 1_700_000_000_123_456):
        when = EPOCH + dt.timedelta(microseconds=us)
        assert timestamp_text(us, "us") == when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert timestamp_text(us // 1000, "ms") == timestamp_text(us - us % 1000, "us")


def test_outside_them() -> None:
    assert date_text(2**31 - 1) == "infinity" and date_text(-(2**31 - 1)) == "-infinity"
    assert timestamp_text(2**63 - 1, "us") == "infinity"
    assert timestamp_text(-(2**63 - 1), "us") == "-infinity"
    assert date_text(6585322) == "20000-01-01"
    assert date_text(-719163) == "0000-12-31"
    assert timestamp_text(-719163 * 86_400, "s") == "0000-12-31T00:00:00.000Z"
