"""Date and time text read as DuckDB's CAST reads it, or not at all.

Python's `fromisoformat` (3.11) also reads ISO basic and week forms and an
hour alone ('20240601', '2024-W23-6', '2024-06-01T12', '12:00:00,5'), which
the CAST refuses: a row written so was stored, and then its own literal in a
WHERE was a Conversion Error. Only the shapes below are read; other text is
refused even where the CAST has a reading of its own (a 5-digit year,
'2024-6-1'), so a value stored from text is always the CAST's. The blanks are
the CAST's, not `str.strip()`'s ('\\x1c'-'\\x1f' are no blanks to it): any
before; after a date alone (to DATE only) or a zone, any; after a time, spaces.
"""

from __future__ import annotations

import datetime as dt
import re

_BLANK = "[ \t\n\x0b\x0c\r]"
_DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE_TEXT = re.compile(f"{_BLANK}*({_DAY}){_BLANK}*")
_TIME_TEXT = re.compile(
    f"{_BLANK}*(?P<day>{_DAY})"
    f"(?:(?:T|{_BLANK}+)(?P<time>[0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\\.[0-9]*)?)?)"
    f"(?: *| *(?P<zone>Z|[+-][0-9]{{2}}(?::?[0-9]{{2}}(?::[0-9]{{2}})?)?){_BLANK}*))?")
FORM = "YYYY-MM-DD[ HH:MM[:SS[.ffffff]][Z|+00:00]]"


def date_of(text: str) -> dt.date | None:
    """A date alone ('2024-06-01', blanks around it), or None."""
    m = _DATE_TEXT.fullmatch(text)
    return None if m is None else dt.date.fromisoformat(m[1])


def time_of(text: str) -> dt.datetime | None:
    """A date and maybe a time and zone (aware if it has one), or None if the
    text has no shape the CAST reads alike; ValueError for a day or time that
    does not exist (2024-02-30, 25:00)."""
    m = _TIME_TEXT.fullmatch(text)
    if m is None:
        return None
    zone = m["zone"] or ""
    return dt.datetime.fromisoformat(  # '12:00:00.' is 12:00:00 to the CAST
        m["day"] + ("T" + m["time"].rstrip(".") if m["time"] else "")
        + ("+00:00" if zone == "Z" else zone))


def kept_time(text: str) -> dt.datetime | None:
    """Date or time text as Cairn read it until 2026-12-05 (`fromisoformat`,
    any form it takes), for a DEFAULT kept then (`types.stored_value`)."""
    s = text.strip().replace(" ", "T", 1)
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        return None


# A point in time as RESTORE's `as_of` and a manifest's times are written.
# `fromisoformat` (3.11) takes ANY character between the date and the time, so
# '2026-12-06+05:30' (a date at an offset) was 05:30 UTC, '2026-12-06_05:30'
# too; it also took a trailing NUL, an hour alone, ',5', offsets with seconds
# or a fraction (dropped) and '+05:60' (as +06:00). Only this shape is read;
# its zone as PostgreSQL shows a timestamptz too ('+00', '+05:30': what psql
# shows of SHOW RESTORE POINTS' end_time), or '+0530'.
_INSTANT = re.compile(
    f"(?P<day>{_DAY})(?:[T ](?P<time>[0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\\.[0-9]{{1,6}})?)?)"
    "(?P<zone>Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?")
INSTANT_FORM = ("YYYY-MM-DD, or YYYY-MM-DD then T or one space and HH:MM[:SS[.ffffff]] "
                "with an optional Z or +HH[:MM]/-HH[:MM] (no zone: UTC)")


def instant(text: str) -> dt.datetime | None:
    """A time of INSTANT_FORM, aware if it names a zone (a date alone is its
    midnight), or None for any other text; ValueError for a day or time that
    does not exist (2024-02-30, 24:00)."""
    m = _INSTANT.fullmatch(text)
    if m is None:
        return None
    zone = m["zone"] or ""
    if zone and zone != "Z":
        zone = zone[:3] + ":" + (zone[3:].lstrip(":") or "00")
    return dt.datetime.fromisoformat(m["day"] + ("T" + m["time"] if m["time"] else "")
                                     + ("+00:00" if zone == "Z" else zone))
