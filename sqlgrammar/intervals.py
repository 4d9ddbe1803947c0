"""An INTERVAL literal sqlglot would read as less than it says.

sqlglot reads `INTERVAL '1 day 02:03:04.5'` as `INTERVAL '1' DAY`: the time of
day is dropped without a word (found by trying: `now() - INTERVAL '1 day
12:00:00'` meant one day). Each INTERVAL string of a statement that is more
than a number and a unit is read on its own, and one that does not come back
whole is INVALID_ARGUMENT naming the CAST that keeps it. The statement is
scanned as sqlglot reads it, without its comments: a comment is read by
nobody. A text without the word is not searched (the pattern took 0.3-0.7 s
over 8 MB, holding the GIL)."""

from __future__ import annotations

import re

from sqlglot.dialects.dialect import Dialect

from .errors import SqlInvalid
from .splitter import Chunk

_DUCKDB = Dialect.get_or_raise("duckdb")
_INTERVAL_TEXT = re.compile(r"(?i)\bINTERVAL\s*'((?:[^']|'')*)'")
# A number and a unit, nothing else: sqlglot reads it as written (sqlgrammar/
# reprint.py writes a unit DuckDB takes only in the string back into it).
# Anything more around them (`'+3 mins'`, `'3 days!'`: DuckDB refuses both)
# sqlglot dropped without a word.
_NUMBER_UNIT = re.compile(r"\s*-?[0-9]+(?:\.[0-9]+)?\s*[A-Za-z]+\s*\Z")


def check_intervals(chunk: Chunk, code: str) -> None:
    if code.isascii() and "INTERVAL" not in code.upper():
        return
    for m in _INTERVAL_TEXT.finditer(code):
        text = m.group(1)
        if _NUMBER_UNIT.match(text):
            continue  # '3 days', '1 hour': a number and a unit, read as written
        parsed = _DUCKDB.parse(f"SELECT INTERVAL '{text}'")[0]
        kept = parsed.sql(dialect="duckdb") if parsed is not None else ""
        if f"'{text}'" not in kept:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise SqlInvalid(
                f"INTERVAL '{shown}' would be read as {kept[len('SELECT '):][:80]} (the rest "
                f"is dropped): write CAST('{shown}' AS INTERVAL)",
                chunk.line, chunk.column, chunk.index)
