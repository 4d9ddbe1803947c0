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
import struct
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa

from ..buffer import decode as decode_buffered
from ..types import SEQ
from .changes import DDL_KINDS, ROWS, Change
from .steps import PACE_EVERY, pace, step

_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,63}\Z")
MAX_VERSION = (1 << 31) - 1
MAX_USER = 1024


class Block(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The stored form of a block: the changes' lsns, commit times and row
    counts (one each per change), and all their rows as one Arrow IPC stream
    (no schema metadata: schema version and user are fields here). Read back,
    `data` is a view of the body, not a copy (a 512 MiB block copied into
    bytes held the GIL for 2.4 s, a stall of every client; a segment body may
    be up to 1 GiB)."""

    table: str
    version: int
    user: str | None
    lsns: list[int]
    at_us: list[int]
    rows: list[int]
    data: memoryview


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
# What a body nested past Python's recursion limit is (a segment holds no
# nesting deeper than 4: msgspec's decoder recursed into a crafted one).
TOO_DEEP = "it nests arrays or maps too deeply"
_encoder = msgspec.msgpack.Encoder()


# --- writing ----------------------------------------------------------------------


_MARK = b"\xff\xff\xff\xff"  # an encapsulated IPC message's continuation marker
_EOS = _MARK + b"\x00\x00\x00\x00"  # an IPC stream's end
_RECORD_BATCH = 3  # flatbuf MessageHeader


_i32 = struct.Struct("<i").unpack_from
_u16 = struct.Struct("<H").unpack_from
_i64 = struct.Struct("<q").unpack_from


def _slot(data: bytes, table: int, slot: int) -> int:
    """Where field `slot` of the flatbuffer table at `table` lies (0: absent)."""
    vtable = table - _i32(data, table)[0]
    if 4 + 2 * slot >= _u16(data, vtable)[0]:
        return 0
    off: int = _u16(data, vtable + 4 + 2 * slot)[0]
    return table + off if off else 0


_END = (0, 0, 0)  # what _message gives for the end of the stream


def _message(data: bytes, pos: int,
             seen: dict[bytes, tuple[int, int, int]]) -> tuple[tuple[int, int, int], int]:
    """((header type, body length, rows), where the next message starts) of
    the encapsulated IPC message at `pos`. Header type 0 is the end of the
    stream. Only ever given streams this server's write buffer encoded, and
    what it finds is checked against Arrow's own reading (`_Open._spliced`);
    bytes that are not a message raise struct.error or ValueError. The
    message's metadata is parsed once per segment (`seen`): a table's one-row
    statements repeat it byte for byte, and the parse is a function of those
    bytes alone, so equal metadata gives the very same tuple."""
    if not data.startswith(_MARK, pos):
        raise ValueError("no continuation marker")
    size = _i32(data, pos + 4)[0]
    if size == 0:
        return _END, pos + 8
    fb = pos + 8
    meta = data[fb:fb + size]
    parsed = seen.get(meta)
    if parsed is None:
        parsed = seen[meta] = _parse(meta)
    end = fb + size + parsed[1]
    if size < 0 or parsed[1] < 0 or parsed[2] < 0 or end > len(data):
        raise ValueError("not a message of this stream")
    return parsed, end


def _parse(meta: bytes) -> tuple[int, int, int]:
    """(header type, body length, rows) from a message's flatbuffer metadata
    (Arrow's Message.fbs: header type in slot 1, header in slot 2, bodyLength
    in slot 3; a RecordBatch's length in its slot 0). Reads nothing outside
    `meta`."""
    try:
        root = _i32(meta, 0)[0]
        kind_at = _slot(meta, root, 1)
        kind = meta[kind_at] if kind_at else 0
        body_at = _slot(meta, root, 3)
        body = _i64(meta, body_at)[0] if body_at else 0
        rows = 0
        if kind == _RECORD_BATCH:
            header_at = _slot(meta, root, 2)
            header = header_at + _i32(meta, header_at)[0]
            length_at = _slot(meta, header, 0)
            rows = _i64(meta, length_at)[0] if length_at else 0
    except IndexError:
        raise ValueError("not a message's metadata") from None
    return kind, body, rows


@dataclass(frozen=True)
class _Kind:
    """What puts a row change in a block besides its table: the rows' Arrow
    schema (without the buffer's metadata), schema version and user."""

    schema: pa.Schema
    version: int
    user: str | None


class _Schemas:
    """The schemas of one segment's streams, each parsed once. A stream's
    schema message differs from an earlier one of the same kind only in the
    bytes of its `cairn.ts` metadata value (the write time): once a message is
    parsed, where that value lies in it is remembered, and a later message
    equal to it outside those bytes is of the same kind (the bytes outside
    hold every flatbuffer offset and length, so they parse the same)."""

    def __init__(self) -> None:
        self._seen: dict[int, list[tuple[bytes, bytes, _Kind]]] = {}
        self._kinds: list[_Kind] = []  # one object per kind: blocks match by identity

    def kind(self, data: bytes, end: int) -> _Kind:
        """The kind of the schema message `data[:end]` (compared in place: a
        known kind costs no copy of the message)."""
        for prefix, suffix, kind in self._seen.get(end, ()):
            if data.startswith(prefix) and data.endswith(suffix, 0, end):
                return kind
        message = data[:end]
        schema = pa.ipc.read_schema(pa.py_buffer(message))
        meta = schema.metadata or {}
        user = meta.get(b"cairn.user")
        kind = _Kind(schema.remove_metadata(), int(meta[b"cairn.v"]),
                     user.decode() if user is not None else None)
        kind = next((k for k in self._kinds if k == kind), kind)
        if kind not in self._kinds:
            self._kinds.append(kind)
        ts = meta.get(b"cairn.ts")
        if ts and message.count(ts) == 1:
            at = message.index(ts)
            self._seen.setdefault(end, []).append(
                (message[:at], message[at + len(ts):], kind))
        return kind


@dataclass
class _Open:
    """A block being collected. Each change's record batch messages are kept
    as bytes (`spliced`), with their row counts; a change that cannot be
    spliced (a message other than a record batch) makes the block decode
    every change's whole stream on its own."""

    table: str
    kind: _Kind
    changes: list[Change] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # rows of every batch message
    spliced: list[bytes] = field(default_factory=list)
    spliceable: bool = True
    meta: tuple[int, int, int] | None = None  # every batch message's parsed metadata …
    uniform: bool = True  # … while they are all the same bytes (see `_spliced`)

    def add(self, c: Change, schema_end: int, seen: dict[bytes, tuple[int, int, int]]) -> None:
        """Change `c`, whose schema message ends at `schema_end` (`seen`: see
        `_message`)."""
        self.changes.append(c)
        data, pos, rows = c.data, schema_end, 0
        try:
            while True:
                if data.startswith(_EOS, pos):  # the end marker: what _message makes of it
                    parsed, end = _END, pos + 8
                    break
                parsed, end = _message(data, pos, seen)
                if parsed[0] != _RECORD_BATCH:
                    break
                if parsed is not self.meta:
                    if self.meta is not None:
                        self.uniform = False
                    self.meta = parsed
                self.batches.append(parsed[2])
                rows += parsed[2]
                pos = end
        except (struct.error, ValueError):
            parsed = (-1, 0, 0)
        if parsed[0] != 0 or end != len(data):
            self.spliceable = False
        self.counts.append(rows)
        self.spliced.append(data[schema_end:pos])

    def block(self) -> Block:
        """The stored block. Its rows are checked as the reader checks them
        (Arrow's full validation): a change log entry that is not a sound
        stream fails the cycle (retried, nothing shipped) instead of becoming a
        block that no restore could read."""
        rows = self._spliced()
        pace()
        if rows is None:
            parts = []
            for c in self.changes:
                parts.append(decode_buffered(b"", c.data).rows)
                parts[-1].validate()
                pace()
            self.counts = [t.num_rows for t in parts]
            rows = pa.concat_tables(parts)
        rows = rows.combine_chunks()
        rows.validate(full=True)
        pace()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        pace()
        return Block(self.table, self.kind.version, self.kind.user,
                     [c.lsn for c in self.changes], [c.at_us for c in self.changes],
                     self.counts, memoryview(sink.getvalue().to_pybytes()))

    def _spliced(self) -> pa.Table | None:
        """All the changes' record batches read as one stream: one schema
        message, every change's batch messages as they are, the end marker.
        Arrow reads it in C++, with no Python per change or per row. None when
        a change cannot be spliced, or Arrow reads other batches (or other
        row counts) than `_message` counted, or refuses them (each stream is
        then decoded on its own, as Arrow reads it). When every batch message
        has the same metadata bytes (`uniform`: a table's one-row INSERTs),
        Arrow's row count of each is one and the same number, read from those
        bytes, so the number of batches and the total say all the counts
        agree without a Python object per batch."""
        if not self.spliceable:
            return None
        data = b"".join([self.kind.schema.serialize().to_pybytes(), *self.spliced, _EOS])
        pace()
        try:
            rows = pa.ipc.open_stream(data).read_all()
            rows.validate()
        except (pa.ArrowException, ValueError, OSError):
            return None
        column = rows.column(0)
        if self.uniform:
            same = (column.num_chunks == len(self.batches)
                    and rows.num_rows == sum(self.batches))
        else:
            same = [len(chunk) for chunk in column.chunks] == self.batches
        return rows if same else None  # else Arrow read other batches: trust Arrow, per stream


def encode_body(changes: list[Change]) -> bytes:
    """The msgpack body of a format_version 2 segment holding `changes` (lsn
    order). Row changes are grouped into blocks by their schema message alone
    (`_Schemas`); a block's rows are decoded once, by Arrow, from the changes'
    record batches spliced into one stream (`_Open`), and written as one
    batch, so a restore never decodes one stream per statement. In the
    archiver's cycle it paces itself every PACE_EVERY changes and between
    blocks (steps.pace); the two parts are steps `blocks_split` (Python, per
    change) and `blocks_arrow` (Arrow, per block) in /metrics."""
    with step("blocks_split"):
        ddl, done = _split(changes)
    with step("blocks_arrow"):
        blocks = [o.block() for o in done]
    pace()
    return _encoder.encode(Body(ddl, blocks))


def _split(changes: list[Change]) -> tuple[list[Change], list[_Open]]:
    """The DDL changes, and the row changes collected into blocks (in the
    order of their first change)."""
    ddl: list[Change] = []
    open_blocks: dict[str, list[_Open]] = {}
    by_kind: dict[tuple[str, int], _Open] = {}  # (table, id of its _Kind): its open block
    done: list[_Open] = []
    schemas = _Schemas()
    seen: dict[bytes, tuple[int, int, int]] = {}
    for i, c in enumerate(changes):
        if not i % PACE_EVERY:
            pace()
        if c.kind != ROWS:
            closed = open_blocks.pop(c.table, [])
            for o in closed:
                del by_kind[(c.table, id(o.kind))]
            done += closed
            ddl.append(c)
            continue
        data = c.data
        if not data.startswith(_MARK):
            raise ValueError(f"change {c.lsn} is not an Arrow IPC stream")
        schema_end = 8 + _i32(data, 4)[0]  # a schema message has no body
        if not 8 < schema_end <= len(data):
            raise ValueError(f"change {c.lsn} is not an Arrow IPC stream")
        kind = schemas.kind(data, schema_end)  # one object per kind, kept by `schemas`
        acc = by_kind.get((c.table, id(kind)))
        if acc is None:
            acc = by_kind[(c.table, id(kind))] = _Open(c.table, kind)
            open_blocks.setdefault(c.table, []).append(acc)
        acc.add(c, schema_end, seen)
    for mine in open_blocks.values():
        done += mine
    done.sort(key=lambda o: o.changes[0].lsn)
    return ddl, done


# --- reading ----------------------------------------------------------------------


def decode_body(plain: bytes | bytearray, after_lsn: int, last_lsn: int, after_us: int, through_us: int,
                count: int) -> list[Entry] | str:
    """The entries of a checked format_version 2 body in commit order (a block
    at its first change), or the problem found."""
    try:
        body = _body_decoder.decode(plain)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return str(exc)
    except RecursionError:  # a change's extra field, skipped by recursing
        return TOO_DEEP
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
        if not (after_us < c_at <= through_us and at <= c_at):  # one commit: one time
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
