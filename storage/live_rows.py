"""How many rows a query of a table sees in a set of its files: the newest
version of each key, unless that version is a delete.

A backup reports these live rows beside the row versions it stores (every
UPDATE and DELETE adds a version). Counted with DuckDB: the `_ow` column of
every row, and the key, `_seq` and `_deleted` of the overwriting versions only; a USER table's files each belong to one user, so
each user's files are counted apart (their keys are the user's own)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from .query import quote, sql_string
from .types import DELETED, OW, SEQ


def count(groups: Sequence[Sequence[Path]], primary_key: Sequence[str]) -> int:
    """Live rows in `groups`: each a list of Parquet files whose keys are one
    key space (a SHARED table's files; one user's files of a USER table)."""
    groups = [g for g in groups if g]
    if not groups:
        return 0
    con = duckdb.connect(":memory:", config={"threads": 1})
    try:
        keys = ", ".join(quote(k) for k in primary_key)
        total = 0
        for paths in groups:
            src = f"read_parquet([{', '.join(sql_string(str(p)) for p in paths)}], union_by_name = true)"
            # A key's first version is the one not marked `_ow` (every later
            # one is: UPDATE, DELETE, re-INSERT), so there are as many keys as
            # such rows, and a key whose newest version is a delete has
            # overwrites: only the `_ow` rows are grouped.
            row = con.execute(
                f"SELECT (SELECT count(*) FROM {src} WHERE {quote(OW)} IS NOT TRUE) - "
                f"(SELECT count(*) FROM (SELECT arg_max({quote(DELETED)}, {quote(SEQ)}) AS d "
                f"FROM {src} WHERE {quote(OW)} GROUP BY {keys}) WHERE d)").fetchone()
            total += int(row[0]) if row else 0
        return total
    finally:
        con.close()
