"""Every column of a backed-up file read back and held to its type and to its
footer's statistics (contents.values_problem feeds it, batch by batch).

`contents.problem` and the key checks read the footer and the columns lookups
skip files by; the other columns were never decoded. So a file whose TEXT
column held bytes that are not UTF-8, whose data page was garbage, or whose
DECIMAL(5,2) held 83886.07 verified valid and was restored, and then every
query of the table failed, for good. And DuckDB skips row groups by the
footer's statistics of any column: a footer saying `max(_ow) = false` (or
`max(_deleted) = false`) hid that a key had later versions, and SELECT showed
a row's old version beside its new one, and deleted rows. So each column's
values are decoded (text stays dictionary-encoded: a value repeated in every
row is decoded once), checked as their type's writer would (`validate`: UTF-8,
a DECIMAL's precision; a TEXT(n)'s length; a JSON column's text as a write
checks it, or as an older release's write took it, which a BACKUP of this
server's data copies: `jsoncheck.kept_json_problem`; no NULL in a NOT NULL column; no
date or time outside the years 1-9999, which a write refuses), and each row group's
NULL count, minimum and maximum compared with its statistics. The archive's replay
checks the rows it replays with `Group` too (rowchecks.py).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..jsoncheck import kept_json_problem
from .schema import Column


class Group:
    """One row group's columns, as its batches are read."""

    def __init__(self, columns: dict[str, Column], stats: dict[str, Any],
                 nan_rule: bool = False) -> None:
        """`nan_rule`: the file says it writes no minimum and maximum of a
        REAL or DOUBLE column holding NaN (files.NAN_RULE)."""
        self.columns, self.stats, self.nan_rule = columns, stats, nan_rule
        self.nulls = dict.fromkeys(columns, 0)
        self.nan: set[str] = set()
        self.low: dict[str, Any] = {}
        self.high: dict[str, Any] = {}

    def add(self, name: str, values: pa.Array) -> str | None:
        """What is wrong with `values`, a batch of column `name`, else None."""
        col = self.columns[name]
        try:
            values.validate(full=True)  # UTF-8, a DECIMAL's precision, offsets
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            return f"holds values of column '{name}' that are not {col.type}: {exc}"
        self.nulls[name] += values.null_count
        if values.null_count and col.not_null:
            return f"holds NULL values in column '{name}', NOT NULL"
        distinct = values.dictionary if isinstance(values, pa.DictionaryArray) else values
        if col.type == "TEXT" and col.params and len(distinct):
            longest = pc.max(pc.utf8_length(distinct)).as_py() or 0
            if longest > col.params[0]:
                return f"holds a value of {longest} characters in column '{name}', TEXT({col.params[0]})"
        if col.type == "JSON":  # as a write takes or took it: a query could fail on it
            for text in distinct.to_pylist():
                if text is not None and (problem := kept_json_problem(text)) is not None:
                    return f"holds a value in JSON column '{name}' that {problem}"
        if (col.type in ("REAL", "DOUBLE") and len(distinct) > distinct.null_count
                and pc.any(pc.is_nan(distinct)).as_py()):
            self.nan.add(name)
        if len(distinct) > distinct.null_count:  # (NaN is skipped, as in the statistics)
            found = pc.min_max(distinct)
            try:
                lo, hi = found["min"].as_py(), found["max"].as_py()
            except OverflowError:  # a write refuses them (values.py_values)
                return (f"holds a value of column '{name}' outside the years 1-9999, "
                        f"which no {col.type} column stores")
            if name not in self.low or lo < self.low[name]:
                self.low[name] = lo
            if name not in self.high or hi > self.high[name]:
                self.high[name] = hi
        return None

    def done(self, g: int) -> str | None:
        """After the group's last batch: its statistics against its values."""
        for name, stats in self.stats.items():
            if stats is None:
                continue
            where = f"column '{name}' of row group {g}"
            if stats.has_null_count and stats.null_count != self.nulls[name]:
                return (f"has a footer counting {stats.null_count} NULL values in {where}, "
                        f"which holds {self.nulls[name]}")
            if self.nan_rule and name in self.nan and stats.has_min_max:
                # Arrow's minimum and maximum leave NaN out, and DuckDB skips the
                # row group by them (`WHERE isnan(x)`, `x > 100` missed the row);
                # files.py writes none for such a column, and its files say so:
                # nanstats.py then trusts them and mends nothing.
                return (f"has a footer giving {where} a minimum and maximum that leave "
                        "out the NaN it holds, though the file says it writes none for "
                        "such a column (cairn.nan_statistics)")
            if name not in self.low or not stats.has_min_max:
                continue
            said, lo, hi = (stats.min, stats.max), self.low[name], self.high[name]
            if all(type(v) is type(lo) for v in said) and (lo < said[0] or hi > said[1]):
                return (f"has a footer putting {where} within {said[0]!r}..{said[1]!r}, "
                        f"which holds {lo!r}..{hi!r}")
        return None
