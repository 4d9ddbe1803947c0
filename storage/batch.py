"""One write statement's rows in a table's buffer, decoded (see buffer.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

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


class BatchMap(dict[bytes, BufBatch]):
    """A table's buffered batches, in commit order (key -> batch).

    `generation` changes whenever an entry is removed or replaced, that is on
    anything but an append of a new key. While it stays the same, the first n
    entries are the same n batches as before, so a cached conversion of them
    can be extended with just the entries after them (buffer.py)."""

    __slots__ = ("generation",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation = 0

    def __setitem__(self, key: bytes, value: BufBatch) -> None:
        if key in self:
            self.generation += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.generation += 1
        super().__delitem__(key)

    def pop(self, key: bytes, *default: Any) -> Any:
        self.generation += 1
        return super().pop(key, *default)

    def popitem(self) -> tuple[bytes, BufBatch]:
        self.generation += 1
        return super().popitem()

    def clear(self) -> None:
        self.generation += 1
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.generation += 1
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> BatchMap:  # type: ignore[override,misc]
        self.generation += 1
        super().__ior__(other)
        return self

    def setdefault(self, key: bytes, default: Any = None) -> Any:
        self.generation += 1
        return super().setdefault(key, default)

    def tail(self, n: int) -> list[BufBatch]:
        """The last `n` batches, oldest first, without walking the others."""
        if n <= 0:
            return []
        out = list(itertools.islice(reversed(self.values()), n))
        out.reverse()
        return out
