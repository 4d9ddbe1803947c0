"""The archiver builds a segment's row blocks by splicing the statements' Arrow
record batches (storage/archive/blocks.py) instead of decoding each statement.
The body it writes must be byte for byte what decoding every statement gives
(the reference below does that, as the archiver did before), for every kind of
rows Cairn writes, and a change log entry that is not the stream it should be
never becomes a block the reader would misread."""

from __future__ import annotations

import datetime as dt
import decimal
import random

import msgspec
import pyarrow as pa
import pytest

from storage import buffer
from storage.archive import blocks, segment
from storage.archive.blocks import Block, Body, Rows, encode_body
from storage.archive.changes import ALTER, CREATE, ROWS, Change
from storage.archive.segment import SegmentName

NS, AID = "app", "ar-0123456789abcdefghjk"


def reference(changes: list[Change]) -> bytes:
    """A format 2 body built by decoding every statement's stream on its own."""
    ddl: list[Change] = []
    open_: dict[str, list[dict[str, object]]] = {}
    done: list[dict[str, object]] = []
    for c in changes:
        if c.kind != ROWS:
            done += open_.pop(c.table, [])
            ddl.append(c)
            continue
        b = buffer.decode(b"", c.data)
        mine = open_.setdefault(c.table, [])
        acc = next((o for o in mine if o["version"] == b.version and o["user"] == b.user
                    and o["schema"].equals(b.rows.schema)), None)  # type: ignore[attr-defined]
        if acc is None:
            acc = {"version": b.version, "user": b.user, "schema": b.rows.schema,
                   "table": c.table, "lsns": [], "at": [], "parts": []}
            mine.append(acc)
        acc["lsns"].append(c.lsn)  # type: ignore[attr-defined]
        acc["at"].append(c.at_us)  # type: ignore[attr-defined]
        acc["parts"].append(b.rows)  # type: ignore[attr-defined]
    for mine in open_.values():
        done += mine
    done.sort(key=lambda o: o["lsns"][0])  # type: ignore[index]
    out = []
    for o in done:
        parts: list[pa.Table] = o["parts"]  # type: ignore[assignment]
        rows = pa.concat_tables(parts).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        out.append(Block(o["table"], o["version"], o["user"], o["lsns"], o["at"],  # type: ignore[arg-type]
                         [p.num_rows for p in parts], sink.getvalue().to_pybytes()))
    return msgspec.msgpack.encode(Body(ddl, out))


SCHEMA = pa.schema([
    pa.field("_seq", pa.int64(), nullable=False), pa.field("_ow", pa.bool_()),
    pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("blob", pa.binary()),
    pa.field("price", pa.decimal128(18, 4)), pa.field("at", pa.timestamp("us", tz="UTC")),
    pa.field("ok", pa.bool_()), pa.field("x", pa.float64()), pa.field("day", pa.date32()),
])


def rows(rng: random.Random, seq: int, n: int, schema: pa.Schema = SCHEMA,
         chunks: int = 1) -> pa.Table:
    """n rows of every type Cairn stores, NULLs among them; `chunks` record batches."""
    def maybe(value: object) -> object:
        return None if rng.random() < 0.2 else value

    cols = {
        "_seq": list(range(seq, seq + n)), "_ow": [rng.random() < 0.5 for _ in range(n)],
        "id": [rng.randrange(-10**12, 10**12) for _ in range(n)],
        "name": [maybe("é" * rng.randrange(0, 40)) for _ in range(n)],
        "blob": [maybe(rng.randbytes(rng.randrange(0, 300))) for _ in range(n)],
        "price": [maybe(decimal.Decimal(rng.randrange(-10**9, 10**9)) / 10_000)
                  for _ in range(n)],
        "at": [maybe(dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i))
               for i in range(n)],
        "ok": [maybe(rng.random() < 0.5) for _ in range(n)],
        "x": [maybe(rng.random()) for _ in range(n)], "day": [maybe(dt.date(2026, 3, 1))] * n,
    }
    table = pa.table({f.name: cols[f.name] for f in schema}, schema=schema)
    if chunks > 1 and n:
        cut = sorted(rng.sample(range(n + 1), chunks - 1))
        bounds = [0, *cut, n]
        table = pa.concat_tables(table.slice(a, b - a) for a, b in itertools_pairs(bounds))
    return table


def itertools_pairs(xs: list[int]) -> list[tuple[int, int]]:
    return list(zip(xs, xs[1:], strict=False))


def log(rng: random.Random, n: int) -> list[Change]:
    """A change log of n entries: two tables, USER rows of two users, schema
    versions, DDL, empty and multi-batch statements, other write times (so
    other lengths of the time in the stream's metadata)."""
    narrow = pa.schema([f for f in SCHEMA if f.name not in ("blob", "day")])
    not_null = SCHEMA.set(2, SCHEMA.field("id").with_nullable(False))
    out: list[Change] = []
    seq, lsn, at = 1, 100, 1_000_000
    for _ in range(n):
        lsn += rng.randrange(1, 3)
        at += rng.randrange(1, 1000)
        table = rng.choice(["t", "t", "t", "u"])
        if rng.random() < 0.05:
            out.append(Change(lsn, at, rng.choice([CREATE, ALTER]), table, b"{}"))
            continue
        k = rng.choice([0, 1, 1, 1, 2, 5, 40])
        schema = rng.choice([SCHEMA, SCHEMA, narrow, not_null])
        version = rng.choice([1, 1, 2, 12])
        user = rng.choice([None, None, "alice", "bob", "é" * 3])
        ts = rng.choice([1764619000.5, 1764619000.123456, 1764619000.0, rng.uniform(0, 2e9)])
        data = buffer.encode(rows(rng, seq, k, schema, rng.choice([1, 1, 2])), version, ts, user)
        seq += k
        out.append(Change(lsn, at, ROWS, table, data))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_spliced_body_is_the_decoded_body(seed: int) -> None:
    """Byte for byte, for a mixed change log (and what the reader makes of it)."""
    rng = random.Random(seed)
    cs = log(rng, 300)
    body = encode_body(cs)
    assert body == reference(cs)
    name = SegmentName(cs[0].lsn - 1, cs[-1].lsn, cs[0].at_us - 1, cs[-1].at_us)
    _, back = segment.decode(segment.encode(NS, AID, name, cs, True, None), NS, AID, name)
    got = [e for e in back if isinstance(e, Rows)]
    assert sum(len(e.lsns) for e in got) == sum(c.kind == ROWS for c in cs)


def test_one_table_one_kind_is_one_block() -> None:
    """The common case (single-row INSERTs into one table) is one block whose
    rows are the statements' rows in order."""
    rng = random.Random(1)
    cs = [Change(10 + i, 1_000 + i, ROWS, "t",
                 buffer.encode(rows(rng, i, 1), 1, 1764619000 + rng.random(), None))
          for i in range(500)]
    [block] = msgspec.msgpack.decode(encode_body(cs), type=Body).blocks
    assert block.rows == [1] * 500 and block.lsns == [c.lsn for c in cs]
    got = pa.ipc.open_stream(block.data).read_all()
    assert got.equals(pa.concat_tables(buffer.decode(b"", c.data).rows for c in cs))
    assert got.column(0).num_chunks == 1 and got.schema.metadata is None


def test_same_length_schemas_are_told_apart() -> None:
    """Schema messages of the same length that differ outside the write time
    (a column name, a version, a user) never share a block."""
    rng = random.Random(2)
    a = pa.schema([pa.field("_seq", pa.int64(), nullable=False), pa.field("c1", pa.int64())])
    b = pa.schema([pa.field("_seq", pa.int64(), nullable=False), pa.field("c2", pa.int64())])
    cs = []
    for i, (schema, version, user) in enumerate(
            [(a, 1, "ann"), (b, 1, "ann"), (a, 2, "ann"), (a, 1, "bob"), (a, 1, "ann")] * 3):
        t = pa.table({schema[1].name: [i]}).add_column(0, schema[0], [[i]]).cast(schema)
        cs.append(Change(10 + i, 1_000 + i, ROWS, "t",
                         buffer.encode(t, version, 1764619000 + rng.random(), user)))
    assert encode_body(cs) == reference(cs)
    kinds = [(b.version, b.user, b.lsns) for b in
             msgspec.msgpack.decode(encode_body(cs), type=Body).blocks]
    assert len(kinds) == 4 and kinds[0] == (1, "ann", [10, 14, 15, 19, 20, 24])


def test_a_dictionary_stream_is_decoded_not_spliced() -> None:
    """A stream holding more than record batches (a dictionary batch) cannot be
    spliced: its block decodes each stream, and the body is still exact."""
    schema = pa.schema([pa.field("_seq", pa.int64(), nullable=False),
                        pa.field("tag", pa.dictionary(pa.int32(), pa.string()))])
    cs = [Change(10 + i, 1_000 + i, ROWS, "t", buffer.encode(
        pa.table({"_seq": [i], "tag": pa.array(["x"]).dictionary_encode()}, schema=schema),
        1, 1764619000.25, None)) for i in range(3)]
    assert encode_body(cs) == reference(cs)


def _batch_length_at(data: bytes) -> int:
    """Where the first record batch's `length` lies in a buffered stream."""
    start = 8 + int.from_bytes(data[4:8], "little")
    fb = start + 8
    root = fb + int.from_bytes(data[fb:fb + 4], "little")
    header_at = blocks._slot(data, root, 2)
    header = header_at + int.from_bytes(data[header_at:header_at + 4], "little")
    return blocks._slot(data, header, 0)


def _crafted(data: bytes) -> list[bytes]:
    at = _batch_length_at(data)
    lie = data[:at] + (7).to_bytes(8, "little") + data[at + 8:]  # says 7 rows, holds 2
    return [
        lie,
        data[: len(data) - 8],  # no end marker
        data[: len(data) // 2] + data[-8:],  # a batch cut short, then the end marker
        data + b"\x00" * 8,  # bytes after the end
        b"\x00\x00\x00\x00" + data[4:],  # no continuation marker
        data[:12],  # the schema message cut
    ]


@pytest.mark.parametrize("case", range(6))
def test_a_crafted_log_entry_never_becomes_a_wrong_block(case: int) -> None:
    """A change log entry that is not the stream it should be (a lying batch
    length, a stream cut or grown) either fails the cycle (nothing shipped:
    the archiver records the error and retries) or is archived exactly as
    Arrow itself reads it; never as a block whose counts or rows differ."""
    rng = random.Random(3)
    good = [buffer.encode(rows(rng, 10 * i, 2), 1, 1764619000.5, None) for i in range(3)]
    bad = _crafted(good[1])[case]
    cs = [Change(11, 1_001, ROWS, "t", good[0]), Change(12, 1_002, ROWS, "t", bad),
          Change(13, 1_003, ROWS, "t", good[2])]
    try:
        body = encode_body(cs)
    except (pa.ArrowException, ValueError, OSError, KeyError, IndexError) as exc:
        assert str(exc)
        return
    assert body == reference(cs)
    name = SegmentName(10, 13, 1_000, 2_000)
    _, back = segment.decode(segment.encode(NS, AID, name, cs, False, None), NS, AID, name)
    [block] = back
    assert isinstance(block, Rows) and block.rows.num_rows == block.offsets[-1]


def test_uniform_batches_are_checked_by_count_and_total() -> None:
    """Statements whose batch messages have the same metadata bytes (one-row
    INSERTs of fixed-width values: the bench's) make a `uniform` block, which
    checks Arrow's reading by the number of batches and the total; one
    statement of another size makes the block check every batch. Both are
    the decoding reference byte for byte."""
    schema = pa.schema([pa.field("_seq", pa.int64(), nullable=False), pa.field("_ow", pa.bool_()),
                        pa.field("id", pa.int64()), pa.field("v", pa.int64()),
                        pa.field("payload", pa.binary())])

    def stmt(i: int, n: int = 1) -> Change:
        t = pa.table([list(range(i, i + n)), [False] * n, list(range(i, i + n)), [i] * n,
                      pa.array([None] * n, pa.binary())], schema=schema)
        return Change(10 + i, 1_000 + i, ROWS, "t", buffer.encode(t, 1, 1764619000 + i / 7, None))

    same = [stmt(i) for i in range(50)]
    [acc] = blocks._split(same)[1]
    assert acc.uniform and acc.spliceable
    assert encode_body(same) == reference(same)
    mixed = [*same[:20], stmt(20, 3), *same[21:]]
    [acc] = blocks._split(mixed)[1]
    assert not acc.uniform and acc.spliceable
    assert encode_body(mixed) == reference(mixed)
    [block] = msgspec.msgpack.decode(encode_body(mixed), type=Body).blocks
    assert block.rows == [1] * 20 + [3] + [1] * 29
