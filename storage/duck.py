"""The two DuckDB calls the engine makes per query, on the fastest path the
installed duckdb offers.

duckdb 2's Python layer (`duckdb._seam`) can register an Arrow table as a
source in ~10 us (`register()` takes ~0.5 ms: it creates a view) and run one
statement straight to Arrow (`sql().to_arrow_table()` parses the statement
three times and binds it twice first, ~0.2 ms more). Where that layer is
missing or not the one we know, the public calls are used: same results, only
slower. Sources live while their handle does and are dropped after the query;
their names are random and never reach the user (errors name the user's table)."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

log = logging.getLogger("cairn.storage")

try:
    from duckdb import _seam as _duckdb_seam
except ImportError:  # another duckdb: the public API
    _duckdb_seam = None

BATCH_ROWS = 131_072
_SUBMIT: Any = getattr(_duckdb_seam, "submit", None)
_REGISTER: Any = getattr(_duckdb_seam, "register_source", None)


def fetch_arrow(cur: Any, sql: str) -> pa.Table:
    """Run one SELECT on `cur` and return all its rows as Arrow."""
    global _SUBMIT
    if _SUBMIT is not None:
        try:
            return _SUBMIT(cur, sql, None, "arrow", BATCH_ROWS).arrow_table()
        except (TypeError, AttributeError):  # not the signature we know
            log.warning("duckdb's submit is not as expected: using sql().to_arrow_table()")
            _SUBMIT = None
    return cur.sql(sql).to_arrow_table()


class Sources:
    """Arrow tables registered on a cursor for one query; `close()` drops them."""

    __slots__ = ("cur", "handles", "names")

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.handles: list[Any] = []
        self.names: list[str] = []

    def add(self, placeholder: str, table: pa.Table) -> str:
        """Register `table`; the identifier the query text uses for it
        (`placeholder` itself when registered by name)."""
        global _REGISTER
        if _REGISTER is not None:
            try:
                handle = _REGISTER(self.cur, table)
                name = handle.name
            except (TypeError, AttributeError):
                log.warning("duckdb's register_source is not as expected: using register()")
                _REGISTER = None
            else:
                self.handles.append(handle)
                return '"' + name.replace('"', '""') + '"'
        self.cur.register(placeholder, table)
        self.names.append(placeholder)
        return placeholder

    def close(self) -> None:
        """Drop every registration (a handle unregisters when it is released)."""
        self.handles.clear()
        names, self.names = self.names, []
        for name in names:
            self.cur.unregister(name)
