"""Intervals written like '30s', '15m', '1h', '1d' or '1h30m' (CREATE SCHEDULE …
EVERY, `[backup] resume_window`), in whole seconds."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^(?:[0-9]+[smhd])+\Z")
_PART = re.compile(r"([0-9]+)([smhd])")


def interval_seconds(text: str) -> int:
    """The interval in seconds; ValueError when it is not one."""
    compact = "".join(text.split()).lower()
    if not _INTERVAL.match(compact):
        raise ValueError(
            f"interval '{text}' is not like '30s', '15m', '1h' or '1d' "
            "(a whole number and s, m, h or d; parts may be combined, as in '1h30m')"
        )
    return sum(int(n) * UNITS[unit] for n, unit in _PART.findall(compact))
