"""One write statement's rows in a table's buffer, decoded (see buffer.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .rowbuild import struct_table


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


_PLAIN = (int, str, bool)


class OneRow(BufBatch):
    """A batch of one row kept as its Python values (in `schema`'s order)
    until something reads `rows`. A one-row Arrow table costs ~5 KB of C++
    objects and tiny buffers (7 columns: an array, its data and buffers per
    column), the values ~0.3 KB, and a buffer of single-row INSERTs holds one
    batch per statement until its flush (docs/performance.md, issue 15, rss2).
    `rows` makes the table the INSERT made (`rowbuild.one_row`, the same
    conversion of the same values); `conform_batches` converts a run of them
    in one call."""

    def __init__(self, key: bytes, version: int, ts: float, user: str | None,
                 values: tuple[Any, ...], schema: pa.Schema, struct: pa.StructType) -> None:
        self.key, self.version, self.ts, self.user = key, version, ts, user
        self.values, self.schema, self.struct = values, schema, struct
        # batch_bytes, once: the buffer counts it at the INSERT, and a flush
        # or snapshot of 10,000 of them summed every value again in Python.
        self.nbytes = sum(len(v) if isinstance(v, str | bytes) else 8 for v in values)

    @property
    def rows(self) -> pa.Table:
        return struct_table(pa.array([self.values], self.struct), self.schema)

    @rows.setter
    def rows(self, value: pa.Table) -> None:
        raise AttributeError("a OneRow's rows are its values")

    @property
    def num_rows(self) -> int:
        return 1

    def plain_value(self, name: str) -> tuple[bool, Any]:
        """(True, the column's value) where Arrow reads back exactly the
        value it was given (an int, str or bool in an integer, string or
        boolean column; or None); (False, None) where only `rows` can say."""
        i = self.schema.get_field_index(name)
        if i < 0:
            return False, None
        have, t = self.values[i], self.schema.field(i).type
        if have is None:
            return True, None
        if type(have) not in _PLAIN or not (
                pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_boolean(t)):
            return False, None
        if type(have) is bool and not pa.types.is_boolean(t):
            return False, None
        return True, have

    def matches(self, point: dict[str, Any]) -> bool | None:
        """Whether the row holds `point` ({column: value}), from the values
        alone where `plain_value` can say; None where only `rows` can."""
        for name, want in point.items():
            ok, have = self.plain_value(name)
            if not ok or have is None or type(want) is not type(have):
                return None
            if have != want:
                return False
        return True

    def __repr__(self) -> str:
        return f"OneRow(key={self.key!r}, version={self.version}, ts={self.ts}, user={self.user!r})"


ONE_ROW_CHUNK = 1024  # rows per conversion in one_row_tables


def one_row_tables(run: list[OneRow]) -> pa.Table:
    """A run of OneRow batches with one schema as one table: one conversion
    per ONE_ROW_CHUNK rows. Each holds the GIL throughout (Python values into
    Arrow), so a job exporting or flushing a buffer of 10,000 single-row
    INSERTs no longer holds it 8 ms at a time beside the event loop, but
    ~0.4 ms (and the whole takes 4.4 ms, not 8.2: docs/performance.md)."""
    first = run[0]
    chunks = [pa.array([b.values for b in run[i:i + ONE_ROW_CHUNK]], first.struct)
              for i in range(0, len(run), ONE_ROW_CHUNK)]
    return struct_table(pa.chunked_array(chunks, first.struct), first.schema)


def batch_bytes(b: BufBatch) -> int:
    """About how many bytes a batch's values take: a OneRow's strings and
    bytes by their length, 8 for any other value; an Arrow batch's buffers."""
    if isinstance(b, OneRow):
        return b.nbytes
    return int(b.rows.nbytes)


class BatchMap(dict[bytes, BufBatch]):
    """A table's buffered batches, in commit order (key -> batch).

    `generation` changes whenever an entry is removed or replaced, that is on
    anything but an append of a new key. While it stays the same, the first n
    entries are the same n batches as before, so a cached conversion of them
    can be extended with just the entries after them (buffer.py). `rows` is
    the total row count and `nbytes` about the bytes of their values
    (`batch_bytes`), kept as entries come and go (the flusher and the metrics
    ask for them often, under the table's lock)."""

    __slots__ = ("generation", "nbytes", "rows")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation = 0
        self.rows = sum(b.num_rows for b in self.values())
        self.nbytes = sum(batch_bytes(b) for b in self.values())

    def __setitem__(self, key: bytes, value: BufBatch) -> None:
        old = self.get(key)
        if old is not None:
            self.generation += 1
            self.rows -= old.num_rows
            self.nbytes -= batch_bytes(old)
        super().__setitem__(key, value)
        self.rows += value.num_rows
        self.nbytes += batch_bytes(value)

    def __delitem__(self, key: bytes) -> None:
        self.generation += 1
        self.rows -= self[key].num_rows
        self.nbytes -= batch_bytes(self[key])
        super().__delitem__(key)

    def pop(self, key: bytes, *default: Any) -> Any:
        self.generation += 1
        out = super().pop(key, *default)
        if isinstance(out, BufBatch):
            self.rows -= out.num_rows
            self.nbytes -= batch_bytes(out)
        return out

    def leads_with(self, generation: int, n: int, hi: bytes) -> bool:
        """Whether the n batches a flush read (when `generation` was this
        map's) are still its first n, and every entry after them has a key
        above `hi`. No entry was removed or replaced since, so the first n are
        those; one written since may have a key below theirs (its sequence
        number was taken before its commit)."""
        return (self.generation == generation and len(self) >= n
                and all(k > hi for k in itertools.islice(self, n, None)))

    def remove_first(self, n: int, rows: int, nbytes: int) -> None:
        """Take off the first n entries, whose rows and bytes are `rows` and
        `nbytes`: the rest are put back, in C, not n removals in Python."""
        rest = list(itertools.islice(dict.items(self), n, None))
        dict.clear(self)
        dict.update(self, rest)
        self.generation += 1
        self.rows -= rows
        self.nbytes -= nbytes

    def remove_flushed(self, flushed: list[BufBatch], sizes: list[int]) -> None:
        """Take `flushed` off (any already gone: skipped), as `pop` of each key
        would; `sizes` are their `batch_bytes`, reckoned before the table's
        lock was taken (an Arrow batch's is a pyarrow call; a OneRow keeps
        its own), so this is a dict removal per batch."""
        self.generation += 1
        for b, size in zip(flushed, sizes, strict=True):
            out = dict.pop(self, b.key, None)
            if out is None:
                continue
            self.rows -= out.num_rows
            self.nbytes -= size if out is b else batch_bytes(out)

    def popitem(self) -> tuple[bytes, BufBatch]:
        self.generation += 1
        key, value = super().popitem()
        self.rows -= value.num_rows
        self.nbytes -= batch_bytes(value)
        return key, value

    def clear(self) -> None:
        self.generation += 1
        super().clear()
        self.rows = self.nbytes = 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.generation += 1
        super().update(*args, **kwargs)
        self.rows = sum(b.num_rows for b in self.values())
        self.nbytes = sum(batch_bytes(b) for b in self.values())

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
