"""One write statement's rows in a table's buffer, decoded (see buffer.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass
class BufBatch:
    key: bytes
    version: int
    ts: float  # unix seconds when written
    user: str | None
    rows: pa.Table

    @property
    def num_rows(self) -> int:
        return int(self.rows.num_rows)
