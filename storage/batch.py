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
    can be extended with just the entries after them (buffer.py). `rows` is
    the total row count, kept as entries come and go (the flusher and the
    metrics ask for it often, under the table's lock)."""

    __slots__ = ("generation", "rows")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation = 0
        self.rows = sum(b.num_rows for b in self.values())

    def __setitem__(self, key: bytes, value: BufBatch) -> None:
        old = self.get(key)
        if old is not None:
            self.generation += 1
            self.rows -= old.num_rows
        super().__setitem__(key, value)
        self.rows += value.num_rows

    def __delitem__(self, key: bytes) -> None:
        self.generation += 1
        self.rows -= self[key].num_rows
        super().__delitem__(key)

    def pop(self, key: bytes, *default: Any) -> Any:
        self.generation += 1
        out = super().pop(key, *default)
        if isinstance(out, BufBatch):
            self.rows -= out.num_rows
        return out

    def popitem(self) -> tuple[bytes, BufBatch]:
        self.generation += 1
        key, value = super().popitem()
        self.rows -= value.num_rows
        return key, value

    def clear(self) -> None:
        self.generation += 1
        super().clear()
        self.rows = 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.generation += 1
        super().update(*args, **kwargs)
        self.rows = sum(b.num_rows for b in self.values())

    def __ior__(self, other: Any) -> BatchMap:  # type: ignore[override,misc]
        self.update(other)
        return self

    def setdefault(self, key: bytes, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def first(self) -> BufBatch | None:
        """The oldest batch (the first committed), without walking the others."""
        return next(iter(self.values()), None)

    def tail(self, n: int) -> list[BufBatch]:
        """The last `n` batches, oldest first, without walking the others."""
        if n <= 0:
            return []
        out = list(itertools.islice(reversed(self.values()), n))
        out.reverse()
        return out
