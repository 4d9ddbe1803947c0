"""Intervals written like '30s', '15m', '1h', '1d' or '1h30m' (CREATE SCHEDULE …
EVERY, `[backup] resume_window`), in whole seconds; and an archive's
`interval` ('500ms', '1s', '2m': `parse_interval`), in milliseconds."""

from __future__ import annotations

import re

from catalog.errors import InvalidArgument

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^(?:[0-9]+[smhd])+\Z")
_PART = re.compile(r"([0-9]+)([smhd])")
_ARCHIVE_INTERVAL = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m)\Z")


def interval_seconds(text: str) -> int:
    """The interval in seconds; ValueError when it is not one."""
    compact = "".join(text.split()).lower()
    if not _INTERVAL.match(compact):
        raise ValueError(
            f"interval '{text}' is not like '30s', '15m', '1h' or '1d' "
            "(a whole number and s, m, h or d; parts may be combined, as in '1h30m')"
        )
    return sum(int(n) * UNITS[unit] for n, unit in _PART.findall(compact))


def _split(months: int, days: int, nanos: int) -> tuple[int, int, int, int, int, int, int]:
    """(years, months, days, hours, minutes, seconds, nanoseconds), each part
    carrying the sign of its field, as PostgreSQL shows an interval."""
    years, months = int(months / 12), months - int(months / 12) * 12
    sign, left = (-1 if nanos < 0 else 1), abs(nanos)
    hours, left = divmod(left, 3_600_000_000_000)
    minutes, left = divmod(left, 60_000_000_000)
    seconds, left = divmod(left, 1_000_000_000)
    return years, months, days, sign * hours, sign * minutes, sign * seconds, sign * left


def _seconds(seconds: int, nanos: int) -> str:
    text = f"{abs(seconds)}" + (f".{abs(nanos):09d}".rstrip("0") if nanos else "")
    return ("-" if seconds < 0 or nanos < 0 else "") + text


def iso_duration(months: int, days: int, nanos: int) -> str:
    """An interval (Arrow's month_day_nano) as ISO 8601 (`P1Y2M3DT4H5M6.5S`,
    PostgreSQL's iso_8601 style: each part signed). It was shown as `[0, 1, 0]`
    over HTTP (the time of day lost) and `MonthDayNano(…)` over pgwire."""
    y, mo, d, h, mi, s, ns = _split(months, days, nanos)
    date = "".join(f"{v}{u}" for v, u in ((y, "Y"), (mo, "M"), (d, "D")) if v)
    time = "".join(f"{v}{u}" for v, u in ((h, "H"), (mi, "M")) if v)
    if s or ns:
        time += _seconds(s, ns) + "S"
    return "P" + date + ("T" + time if time else "") if date or time else "PT0S"


def postgres_interval(months: int, days: int, nanos: int) -> str:
    """An interval as PostgreSQL's default IntervalStyle writes it
    (`1 year 2 mons 3 days 04:05:06.5`)."""
    y, mo, d, h, mi, s, ns = _split(months, days, nanos)
    parts = [f"{v} {u}{'' if abs(v) == 1 else 's'}"
             for v, u in ((y, "year"), (mo, "mon"), (d, "day")) if v]
    if h or mi or s or ns or not parts:
        sign = "-" if nanos < 0 else ""
        sec = _seconds(abs(s), abs(ns))
        parts.append(f"{sign}{abs(h):02d}:{abs(mi):02d}:{'0' if abs(s) < 10 else ''}{sec}")
    return " ".join(parts)


def parse_interval(text: str) -> int:
    """An archive's interval, '1s', '500ms', '2m', as milliseconds (100 ms ... 1 h)."""
    m = _ARCHIVE_INTERVAL.match(text.strip().lower()) if isinstance(text, str) else None
    if m is None:
        raise InvalidArgument(f"interval '{text}' is not like '1s', '500ms' or '2m'")
    ms = float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000}[m.group(2)]
    if not 100 <= ms <= 3_600_000:
        raise InvalidArgument("interval must be between 100ms and 60m")
    return int(ms)
