"""Row blocks: how a format_version 2 segment stores its row changes.

A segment's `rows` changes are kept together by table: consecutive row changes
of one table written under one schema version (and, for USER tables, by one
user) with the same Arrow schema become one **block**, a single Arrow IPC
stream of all their rows with, per change, its lsn, its commit time and its row
count beside it. A restore then decodes one stream per block instead of one per
statement, and cutting at an instant is a slice (`Rows.within`). A block never
spans a DDL change of its table (CREATE, ALTER, DROP close the table's open
blocks), so applying a whole block at its first lsn is the same as applying its
changes one by one. DDL changes stay as they are (`Change`).

Everything here decodes input read back from a target: `decode_body` checks the
typed msgpack body, every lsn and time (in order, in the segment's ranges, none
twice), that no block spans a DDL change of its table, and decodes and
validates each block's Arrow stream against its row counts. A problem is
returned as text for the caller's BACKUP_INVALID; nothing is trusted before."""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa

from ..buffer import decode as decode_buffered
from ..types import SEQ
from .changes import DDL_KINDS, ROWS, Change

_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,63}\Z")
MAX_VERSION = (1 << 31) - 1
MAX_USER = 1024


class Block(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The stored form of a block: the changes' lsns, commit times and row
    counts (one each per change), and all their rows as one Arrow IPC stream
    (no schema metadata: schema version and user are fields here)."""

    table: str
    version: int
    user: str | None
    lsns: list[int]
    at_us: list[int]
    rows: list[int]
    data: bytes


class Body(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A format_version 2 segment body: its DDL changes and its row blocks."""

    changes: list[Change]
    blocks: list[Block]


@dataclass(frozen=True)
class Rows:
    """A decoded block: change i holds rows offsets[i] .. offsets[i+1] of `rows`."""

    table: str
    version: int
    user: str | None
    lsns: list[int]
    at_us: list[int]
    offsets: list[int]
    rows: pa.Table

    @property
    def lsn(self) -> int:
        """Where the block applies in commit order (its first change)."""
        return self.lsns[0]

    @property
    def last_us(self) -> int:
        return self.at_us[-1]

    def within(self, after_us: int, upto_us: int) -> Rows | None:
        """The block's changes committed in (after_us, upto_us], or None."""
        lo = bisect.bisect_right(self.at_us, after_us)
        hi = bisect.bisect_right(self.at_us, upto_us)
        if lo >= hi:
            return None
        if lo == 0 and hi == len(self.at_us):
            return self
        start, end = self.offsets[lo], self.offsets[hi]
        return Rows(self.table, self.version, self.user, self.lsns[lo:hi], self.at_us[lo:hi],
                    [o - start for o in self.offsets[lo:hi + 1]],
                    self.rows.slice(start, end - start))


Entry = Change | Rows

_body_decoder = msgspec.msgpack.Decoder(Body)
_encoder = msgspec.msgpack.Encoder()


# --- writing ----------------------------------------------------------------------


@dataclass
class _Open:
    table: str
    version: int
    user: str | None
    schema: pa.Schema
    lsns: list[int] = field(default_factory=list)
    at_us: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    parts: list[pa.Table] = field(default_factory=list)

    def block(self) -> Block:
        rows = pa.concat_tables(self.parts).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        return Block(self.table, self.version, self.user, self.lsns, self.at_us, self.counts,
                     sink.getvalue().to_pybytes())


def encode_body(changes: list[Change]) -> bytes:
    """The msgpack body of a format_version 2 segment holding `changes` (lsn
    order). Each row change's stream (as the write buffer stores it) is decoded
    once here, in the archiver, so a restore never decodes it on its own."""
    ddl: list[Change] = []
    open_blocks: dict[str, list[_Open]] = {}
    done: list[_Open] = []
    for c in changes:
        if c.kind != ROWS:
            done += open_blocks.pop(c.table, [])
            ddl.append(c)
            continue
        b = decode_buffered(b"", c.data)
        mine = open_blocks.setdefault(c.table, [])
        acc = next((o for o in mine if o.version == b.version and o.user == b.user
                    and o.schema.equals(b.rows.schema)), None)
        if acc is None:
            acc = _Open(c.table, b.version, b.user, b.rows.schema)
            mine.append(acc)
        acc.lsns.append(c.lsn)
        acc.at_us.append(c.at_us)
        acc.counts.append(b.rows.num_rows)
        acc.parts.append(b.rows)
    for mine in open_blocks.values():
        done += mine
    done.sort(key=lambda o: o.lsns[0])
    return _encoder.encode(Body(ddl, [o.block() for o in done]))


# --- reading ----------------------------------------------------------------------


def decode_body(plain: bytes, after_lsn: int, last_lsn: int, after_us: int, through_us: int,
                count: int) -> list[Entry] | str:
    """The entries of a checked format_version 2 body in commit order (a block
    at its first change), or the problem found."""
    try:
        body = _body_decoder.decode(plain)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return str(exc)
    problem = _shape_problem(body)
    if problem:
        return problem
    pairs = [(c.lsn, c.at_us) for c in body.changes]
    for b in body.blocks:
        pairs += zip(b.lsns, b.at_us, strict=True)
    if len(pairs) != count:
        return f"it holds {len(pairs)} changes, header says {count}"
    pairs.sort()
    lsn, at = after_lsn, after_us
    for c_lsn, c_at in pairs:
        if not lsn < c_lsn <= last_lsn:
            return f"change lsn {c_lsn} twice or outside ({after_lsn}, {last_lsn}]"
        if not at < c_at <= through_us:
            return f"change time {c_at} out of order or outside the segment's time"
        lsn, at = c_lsn, c_at
    if pairs and pairs[-1][0] != last_lsn:
        return "its last change is not last_lsn"
    problem = _spans_ddl(body)
    if problem:
        return problem
    entries: list[Entry] = list(body.changes)
    for b in body.blocks:
        rows = _arrow(b)
        if isinstance(rows, str):
            return rows
        offsets = [0]
        for n in b.rows:
            offsets.append(offsets[-1] + n)
        entries.append(Rows(b.table, b.version, b.user, b.lsns, b.at_us, offsets, rows))
    entries.sort(key=lambda e: e.lsn)
    return entries


def _shape_problem(body: Body) -> str | None:
    for c in body.changes:
        if c.kind not in DDL_KINDS or not _TABLE.match(c.table):
            return f"change {c.lsn} has an unknown kind or a bad table name"
    for b in body.blocks:
        if not _TABLE.match(b.table):
            return "a block has a bad table name"
        if not 1 <= b.version <= MAX_VERSION:
            return f"a block of table '{b.table}' has bad schema version {b.version}"
        if b.user is not None and not 1 <= len(b.user) <= MAX_USER:
            return f"a block of table '{b.table}' has a bad user"
        if not b.lsns or not len(b.lsns) == len(b.at_us) == len(b.rows):
            return f"a block of table '{b.table}' has lsns, times and counts that disagree"
        if any(n < 0 for n in b.rows) or any(x >= y for x, y in itertools.pairwise(b.lsns)):
            return f"a block of table '{b.table}' has a negative count or lsns out of order"
    return None


def _spans_ddl(body: Body) -> str | None:
    """A block must not span a DDL change of its own table."""
    ddl: dict[str, list[int]] = {}
    for c in body.changes:
        ddl.setdefault(c.table, []).append(c.lsn)
    for lsns in ddl.values():
        lsns.sort()
    for b in body.blocks:
        mine = ddl.get(b.table)
        if mine:
            i = bisect.bisect_right(mine, b.lsns[0])
            if i < len(mine) and mine[i] < b.lsns[-1]:
                return f"a block of table '{b.table}' spans its DDL change {mine[i]}"
    return None


def _arrow(b: Block) -> pa.Table | str:
    try:
        rows = pa.ipc.open_stream(b.data).read_all()
        rows.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError,
            TypeError, OSError) as exc:
        return f"a block of table '{b.table}' does not decode: {exc}"
    if rows.num_rows != sum(b.rows):
        return (f"a block of table '{b.table}' holds {rows.num_rows} rows, "
                f"its changes say {sum(b.rows)}")
    if SEQ not in rows.column_names or rows.schema.metadata:
        return f"a block of table '{b.table}' is not rows of a table"
    return rows


def last_change_us(entries: list[Any]) -> int | None:
    """The commit time of the newest change among decoded entries."""
    times = [e.last_us if isinstance(e, Rows) else e.at_us for e in entries]
    return max(times, default=None)
