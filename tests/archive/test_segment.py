"""Segments read back are hostile: every flipped byte, every crafted header or
body that does not fit is refused with BACKUP_INVALID, and runs/windows follow
the names exactly."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time

import msgspec
import pyarrow as pa
import pytest

from catalog.errors import BackupInvalid
from storage import buffer
from storage.archive import segment, store
from storage.archive.blocks import Block, Body, Rows
from storage.archive.changes import ALTER, CREATE, DROP, ROWS, Change
from storage.archive.segment import SegmentName

NS, AID = "app", "ar-0123456789abcdefghjk"


def rows_of(i: int, n: int = 1, version: int = 1, **extra: list[object]) -> pa.Table:
    return pa.table({"_seq": pa.array(range(100 * i, 100 * i + n), pa.int64()),
                     "_ow": pa.array([False] * n), "id": pa.array([i] * n, pa.int64()),
                     **extra})


def rows_change(lsn: int, at: int, i: int, n: int = 1, version: int = 1,
                table: str = "t") -> Change:
    return Change(lsn, at, ROWS, table, buffer.encode(rows_of(i, n), version, 0.0, None))


def changes(n: int, lsn0: int = 10, at0: int = 1_000_000) -> list[Change]:
    return [rows_change(lsn0 + 2 * i + 1, at0 + 10 * i + 5, i, 1 + i % 3) for i in range(n)]


def make(n: int = 3, compress: bool = True,
         version: int = segment.FORMAT_VERSION) -> tuple[SegmentName, list[Change], bytes]:
    cs = changes(n)
    name = SegmentName(10, cs[-1].lsn if cs else 10, 1_000_000, 2_000_000)
    return name, cs, segment.encode(NS, AID, name, cs, compress, None, version)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(compress: bool) -> None:
    """Format 2: the row changes of one table come back as one block, cut by time."""
    name, cs, data = make(compress=compress)
    header, back = segment.decode(data, NS, AID, name)
    assert header.format_version == 2 and header.count == 3
    [block] = back
    assert isinstance(block, Rows)
    assert block.lsns == [c.lsn for c in cs] and block.at_us == [c.at_us for c in cs]
    want = pa.concat_tables(buffer.decode(b"", c.data).rows for c in cs)
    assert block.rows.equals(want) and block.offsets == [0, 1, 3, 6]
    assert segment.parse_name(name.file) == name
    middle = block.within(cs[0].at_us, cs[1].at_us)
    assert middle is not None and middle.lsns == [cs[1].lsn]
    assert middle.rows.equals(buffer.decode(b"", cs[1].data).rows)
    assert block.within(cs[-1].at_us, 2_000_000) is None


def test_blocks_split_at_ddl_and_schema_version() -> None:
    """A DDL change of a table closes its blocks; another table's rows and
    another schema version are blocks of their own; order is commit order."""
    cs = [rows_change(11, 1_000_010, 1), rows_change(12, 1_000_020, 2, table="u"),
          rows_change(13, 1_000_030, 3),
          Change(14, 1_000_040, ALTER, "t", b"{}"),
          rows_change(15, 1_000_050, 4, version=2), rows_change(16, 1_000_060, 5, table="u")]
    name = SegmentName(10, 16, 1_000_000, 2_000_000)
    _, back = segment.decode(segment.encode(NS, AID, name, cs, True, None), NS, AID, name)
    shape = [(e.table, e.lsns) if isinstance(e, Rows) else (e.kind, e.lsn) for e in back]
    assert shape == [("t", [11, 13]), ("u", [12, 16]), (ALTER, 14), ("t", [15])]
    assert [e.version for e in back if isinstance(e, Rows)] == [1, 1, 2]


@pytest.mark.parametrize("compress", [True, False])
def test_format_1_is_still_read(compress: bool) -> None:
    name, cs, data = make(compress=compress, version=1)
    header, back = segment.decode(data, NS, AID, name)
    assert header.format_version == 1 and back == cs


@pytest.mark.parametrize("version", [1, 2])
def test_every_flipped_byte_is_refused(version: int) -> None:
    """Format 2 checks the stored body's sha256, so every flip is refused.
    Format 1 checks the decoded body only: a flip zstd decodes to the very same
    bytes (an unused bit) reads as the same changes, any other is refused."""
    name, cs, data = make(version=version)
    rng = random.Random(7)
    for pos in sorted(rng.sample(range(len(data)), min(len(data), 150))) + [len(data) - 1]:
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        if version == 2:
            with pytest.raises(BackupInvalid):
                segment.decode(bytes(bad), NS, AID, name)
            continue
        with contextlib.suppress(BackupInvalid):
            assert segment.decode(bytes(bad), NS, AID, name)[1] == cs


def test_truncated_or_grown_is_refused() -> None:
    name, _, data = make()
    for bad in (data[:-1], data + b"x", data[: len(data) // 2], b"", b"\n"):
        with pytest.raises(BackupInvalid):
            segment.decode(bad, NS, AID, name)


def test_wrong_place_is_refused() -> None:
    name, _, data = make()
    other = SegmentName(name.after_lsn, name.last_lsn, name.after_us, name.through_us + 1)
    elsewhere = ((NS, AID, other), ("other", AID, name), (NS, "ar-zzzzzzzzzzzzzzzzzzzz", name))
    for ns, aid, nm in elsewhere:
        with pytest.raises(BackupInvalid):
            segment.decode(data, ns, aid, nm)


def _resealed(data: bytes, **change: object) -> bytes:
    """A crafted segment: header fields changed and the header checksum redone."""
    head, body = data.split(b"\n", 1)
    doc = json.loads(head)
    doc.update(change)
    doc.pop("header_sha256")
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    doc["header_sha256"] = hashlib.sha256(canon).hexdigest()
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n" + body


@pytest.mark.parametrize("change", [
    {"format_version": 3}, {"format_version": 1}, {"format_version": "2"},
    {"count": 2}, {"count": -1}, {"codec": "lz4"},
    {"key": "0" * 32}, {"body_size": 1}, {"plain_size": 1 << 40}, {"extra": 1},
    {"after_lsn": "10"}, {"plain_sha256": "0" * 64}, {"body_sha256": "0" * 64},
    {"body_sha256": None}, {"body_sha256": "X" * 64},
])
def test_crafted_headers_are_refused(change: dict[str, object]) -> None:
    name, _, data = make()
    with pytest.raises(BackupInvalid):
        segment.decode(_resealed(data, **change), NS, AID, name)


@pytest.mark.parametrize("field", ["namespace", "archive_id", "key", "plain_sha256"])
def test_a_header_holding_a_lone_surrogate_is_refused(field: str) -> None:
    """`"namespace":"\ud800"` (JSON reads it, msgspec takes it as a str) had
    no canonical form to check: UnicodeEncodeError, a 500 of VERIFY ARCHIVE
    and RESTORE as_of. It is damage, BACKUP_INVALID."""
    name, _, data = make()
    head, body = data.split(b"\n", 1)
    doc = json.loads(head)
    doc[field] = "PLACEHOLDER"
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")).replace(
        '"PLACEHOLDER"', '"\\ud800"')
    with pytest.raises(BackupInvalid, match="corrupt"):
        segment.decode(text.encode() + b"\n" + body, NS, AID, name)


def _with_changes(cs: object, name: SegmentName, version: int = 1, count: int = 3) -> bytes:
    """A segment whose body is crafted (checksums right, content wrong)."""
    return _with_plain(msgspec.msgpack.encode(cs), name, version, count)


def _with_plain(plain: bytes, name: SegmentName, version: int = 1, count: int = 3) -> bytes:
    sums = {"body_sha256": hashlib.sha256(plain).hexdigest()} if version == 2 else {}
    empty = segment.encode(NS, AID, name, [], False, None, version)
    return _resealed(empty.split(b"\n", 1)[0] + b"\n" + plain, body_size=len(plain),
                     plain_size=len(plain), plain_sha256=hashlib.sha256(plain).hexdigest(),
                     count=count, **sums)


@pytest.mark.parametrize("mutate", [
    lambda cs: [cs[1], cs[0], cs[2]],  # out of order
    lambda cs: [*cs[:2], Change(cs[2].lsn, cs[1].at_us - 1, ROWS, "t", b"")],  # time goes back
    lambda cs: [*cs[:2], Change(cs[2].lsn, 3_000_000, ROWS, "t", b"")],  # past through
    lambda cs: [*cs[:2], Change(cs[2].lsn, cs[2].at_us, "truncate", "t", b"")],  # unknown kind
    lambda cs: [*cs[:2], Change(cs[2].lsn, cs[2].at_us, ROWS, "../x", b"")],  # bad table
    lambda cs: [Change(5, cs[0].at_us, ROWS, "t", b""), *cs[1:]],  # before after_lsn
])
def test_crafted_changes_are_refused(mutate: object) -> None:
    """Format 1 bodies."""
    name, cs, _ = make(version=1)
    bad = mutate(cs)  # type: ignore[operator]
    with pytest.raises(BackupInvalid):
        segment.decode(_with_changes(bad, name), NS, AID, name)


@pytest.mark.parametrize("version", [2, 1])
def test_changes_of_one_commit_share_its_time(version: int) -> None:
    """Times may repeat (the changes of one commit have its one time); a
    restore's cut takes all of them or none."""
    name, cs, _ = make(version=version)
    one = [Change(c.lsn, cs[0].at_us, c.kind, c.table, c.data) for c in cs]
    _, back = segment.decode(segment.encode(NS, AID, name, one, True, None, version),
                             NS, AID, name)
    lsns = [lsn for e in back for lsn in (e.lsns if isinstance(e, Rows) else [e.lsn])]
    assert lsns == [c.lsn for c in cs]
    if version == 2:
        [block] = back
        assert isinstance(block, Rows) and block.within(cs[0].at_us, 2_000_000) is None
        whole = block.within(1_000_000, cs[0].at_us)
        assert whole is not None and whole.lsns == block.lsns


def _stream(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return bytes(sink.getvalue().to_pybytes())


GOOD = _stream(pa.concat_tables([rows_of(1), rows_of(2, 2)]))
DDL = Change(12, 1_000_020, ALTER, "t", b"{}")


def _block(**change: object) -> Block:
    fields = {"table": "t", "version": 1, "user": None, "lsns": [11, 13],
              "at_us": [1_000_010, 1_000_030], "rows": [1, 2], "data": GOOD, **change}
    return Block(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [
    Body([], [_block(rows=[1, 1])]),  # counts disagree with the stream
    Body([], [_block(rows=[-1, 4])]),  # a negative count
    Body([], [_block(lsns=[13, 11])]),  # lsns out of order
    Body([], [_block(lsns=[11])]),  # lsns and times disagree
    Body([], [_block(at_us=[1_000_030, 1_000_010])]),  # time goes back
    Body([], [_block(at_us=[1_000_010, 3_000_000])]),  # past through
    Body([], [_block(lsns=[5, 13])]),  # before after_lsn
    Body([DDL], [_block()]),  # a block spanning its table's DDL
    Body([Change(13, 1_000_040, ALTER, "u", b"{}")], [_block()]),  # lsn 13 twice
    Body([Change(12, 1_000_020, ROWS, "t", b"")], [_block()]),  # rows outside a block
    Body([], [_block(table="../x")]),  # bad table name
    Body([], [_block(version=0)]),  # bad schema version
    Body([], [_block(user="")]),  # bad user
    Body([], [_block(data=b"not arrow")]),  # not an Arrow stream
    Body([], [_block(data=GOOD[: len(GOOD) // 2])]),  # a cut Arrow stream
    Body([], [_block(data=_stream(pa.table({"id": [1, 2, 3]})))]),  # no _seq
    Body([], [_block(data=_stream(rows_of(1, 3).replace_schema_metadata({"a": "b"})))]),
    Body([], []),  # count says 2
    [[], [_block()], []],  # an extra field
])
def test_crafted_blocks_are_refused(body: object) -> None:
    """Format 2 bodies with correct checksums and wrong content."""
    name = SegmentName(10, 13, 1_000_000, 2_000_000)
    good = _with_changes(Body([], [_block()]), name, 2, 2)
    assert isinstance(segment.decode(good, NS, AID, name)[1][0], Rows)  # the base case reads
    with pytest.raises(BackupInvalid):
        segment.decode(_with_changes(body, name, 2, 2), NS, AID, name)


def test_names() -> None:
    assert segment.parse_name("x.seg") is None
    assert segment.parse_name(f"{2:020d}-{1:020d}-{0:017d}-{0:017d}.seg") is None  # last < after
    assert segment.parse_name(f"{0:020d}-{1:020d}-{5:017d}-{4:017d}.seg") is None  # time back
    assert segment.parse_name("../" + SegmentName(0, 1, 2, 3).file) is None
    # Only ASCII digits: int() reads Arabic-Indic or fullwidth digits too, so a
    # planted copy named with them was read as the segment of the same range.
    real = SegmentName(7, 9, 10, 20).file
    for zero in ("\u0660", "\uff10"):
        assert segment.parse_name(real.replace("0", zero)) is None
    assert segment.parse_name(real + "\n") is None


def test_runs_and_windows() -> None:
    a = SegmentName(0, 5, 100, 200)
    b = SegmentName(5, 9, 200, 300)
    c = SegmentName(20, 25, 400, 500)  # after a gap
    d = SegmentName(3, 7, 150, 250)  # overlaps a
    runs, problems = store.runs_of(AID, [a, b, c])
    assert [r.segments for r in runs] == [[a, b], [c]] and problems == []
    _, problems = store.runs_of(AID, sorted([a, b, d]))
    assert problems
    wins = store.windows(runs, [store.Base("bk-1", 150), store.Base("bk-2", 400),
                                store.Base("bk-0", 50)])
    assert [(w.start_us, w.end_us) for w in wins] == [(150, 300), (400, 500)]


def test_a_base_names_its_archive_and_a_cut_inside_the_run() -> None:
    """A backup that names its archive is a base of a run only with the run's
    archive id and its cut lsn in [after_lsn, last_lsn] (and its time inside);
    null (no archive) is never a base; an older manifest (legacy) by time alone."""
    from storage.backup.schema import ArchiveRef
    [run] = store.runs_of(AID, [SegmentName(10, 15, 100, 200), SegmentName(15, 19, 200, 300)])[0]
    other = "ar-" + "1" * 20

    def base(archive: ArchiveRef | None, at: int = 150, legacy: bool = False) -> store.Base:
        return store.Base("bk", at, archive, legacy)

    for lsn in (10, 12, 15, 19):
        assert store.is_base(base(ArchiveRef(id=AID, lsn=lsn)), run)
    for lsn in (9, 20, 2**63 - 1):
        assert not store.is_base(base(ArchiveRef(id=AID, lsn=lsn)), run)
    assert not store.is_base(base(ArchiveRef(id=other, lsn=12)), run)
    assert not store.is_base(base(ArchiveRef(id=AID, lsn=12), at=301), run)
    assert not store.is_base(base(ArchiveRef(id=AID, lsn=12), at=99), run)
    assert not store.is_base(base(None), run)
    assert store.is_base(base(None, legacy=True), run)
    assert not store.is_base(base(None, at=301, legacy=True), run)
    assert [len(w.bases) for w in store.windows(
        [run], [base(ArchiveRef(id=AID, lsn=12)), base(ArchiveRef(id=other, lsn=12), at=160),
                base(None, at=170)])] == [1]


def test_times() -> None:
    us = store.parse_us("2026-12-01T10:00:00.123456Z")
    assert store.parse_us("2026-12-01T10:00:00.123456") == us  # no zone: UTC
    assert store.parse_us("2026-12-01T11:00:00.123456+01:00") == us
    assert store.iso(us) == "2026-12-01T10:00:00.123456Z"  # exact: never floored
    assert store.iso(us - 456) == "2026-12-01T10:00:00.123Z"  # a whole ms as ms
    assert store.parse_us(store.iso(us)) == us


def test_replay_refuses_blocks_that_do_not_fit() -> None:
    """Blocks that decode but do not fit the tables they name: BACKUP_INVALID."""
    from storage.archive import replay
    from storage.schema import system_column

    def table(kind: str) -> dict[str, object]:
        key = {"name": "id", "type": "BIGINT", "params": [], "not_null": True,
               "primary_key": True, "has_default": False, "default": None,
               "system": False, "since": 1}
        columns = [key, system_column("_updated"), system_column("_deleted")]
        return {"name": "t", "table_type": kind, "schema_version": 1, "primary_key": ["id"],
                "options": {}, "created_at": "2026-12-01T00:00:00+00:00",
                "schemas": [{"version": 1, "columns": columns,
                             "created_at": "2026-12-01T00:00:00+00:00"}],
                "files": [], "rows": 0, "max_seq": 0}

    def stored(n: int = 1, user: str | None = None, **change: pa.Array) -> pa.Table:
        cols: dict[str, pa.Array] = {"_seq": pa.array(range(11, 11 + n), pa.int64()),
                                     "_ow": pa.array([False] * n)}
        if user is not None:
            cols["_user"] = pa.array([user] * n)
        cols |= {"id": pa.array(range(n), pa.int64()),
                 "_updated": pa.array([1_000_000] * n, pa.timestamp("us")),
                 "_deleted": pa.array([False] * n)}
        cols |= change
        nullable = {"_ow"} | set(change)
        return pa.table(cols, schema=pa.schema(
            [pa.field(k, v.type, nullable=k in nullable) for k, v in cols.items()]))

    def block(user: str | None = None, version: int = 1, name: str = "t",
              rows: pa.Table | None = None) -> Rows:
        rows = stored(user=user) if rows is None else rows
        return Rows(name, version, user, [11], [1_000_010], [0, rows.num_rows], rows)

    assert replay.replay([table("shared")], [("s", [block()])], "x")["t"].batches
    assert replay.replay([table("user")], [("s", [block(user="alice")])], "x")["t"].batches
    for tables, bad in (([table("user")], block()),  # a USER table's rows without a user
                        ([table("shared")], block(user="alice")),  # a user on shared rows
                        ([table("shared")], block(version=2)),  # an unknown schema version
                        ([table("shared")], block(name="u")),  # a table that does not exist
                        # another user's rows in alice's block
                        ([table("user")], Rows("t", 1, "alice", [11], [1_000_010], [0, 1],
                                               stored(user="bob"))),
                        # a NULL key, a key of text, a NULL _seq
                        ([table("shared")], block(rows=stored(id=pa.array([None], pa.int64())))),
                        ([table("shared")], block(rows=stored(id=pa.array(["abc"])))),
                        ([table("shared")], block(rows=stored(_seq=pa.array([None], pa.int64()))))):
        with pytest.raises(BackupInvalid):
            replay.replay(tables, [("s", [bad])], "x")
    # the same checks when VERIFY ARCHIVE replays without keeping rows
    checker = replay.Replay([table("user")], "x", keep_rows=False)
    checker.apply(block(user="alice"))
    assert checker.tables["t"].batches == []
    with pytest.raises(BackupInvalid):
        checker.apply(Rows("t", 1, "alice", [12], [1_000_011], [0, 1], stored(user="bob")))


@pytest.mark.parametrize("shape", ["zeros", "one block"])
def test_a_body_that_inflates_to_hundreds_of_mib_does_not_hold_the_gil_in_one_piece(
        shape: str) -> None:
    """A ~10 KB zstd segment whose body is 256 MiB (up to 1 GiB is allowed: one
    statement's rows): zeros, or a well-formed body of one block whose `data` is
    256 MiB. Decoding it once copied the inflated body, then the block's data,
    each in one piece holding the GIL (0.4 s and 1.2 s here; for 1 GiB 2.4 s, a
    stall of every client). Now the body is kept as inflated, chunk by chunk,
    and the block is a view of it; then it is refused (not a body, not Arrow)."""
    name = segment.SegmentName(0, 1, 0, 1000)
    archive_id = "ar-" + "0" * 20
    plain = bytes(256 << 20) if shape == "zeros" else msgspec.msgpack.encode(
        [[], [["t", 1, None, [1], [500], [1], bytes(256 << 20)]]])
    data = segment.seal("app", archive_id, name, plain, 1, True, None)
    del plain
    assert len(data) < 64 << 10
    # Between two ticks of another thread, the CPU time of this one: a piece
    # held with the GIL is CPU time with no tick in it. (Wall gaps counted the
    # machine's load too: a loaded CI machine left the ticker without a CPU.)
    gaps: list[float] = []
    stop = threading.Event()
    decoder = time.pthread_getcpuclockid(threading.get_ident())

    def tick() -> None:
        last = time.clock_gettime(decoder)
        while not stop.is_set():
            time.sleep(0.002)
            now = time.clock_gettime(decoder)
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        with pytest.raises(BackupInvalid, match="corrupt"):
            segment.decode(data, "app", archive_id, name)
    finally:
        stop.set()
        ticker.join()
    assert max(gaps) < 0.2, max(gaps)


@pytest.mark.parametrize("depth", [5000, 100_000])
@pytest.mark.parametrize("version", [1, 2])
def test_a_body_nested_too_deep_is_refused(version: int, depth: int) -> None:
    """A change with an extra field nested `depth` deep, checksums right:
    msgspec skipped it by recursing, a RecursionError (a 500)."""
    name = SegmentName(10, 13, 1_000_000, 2_000_000)
    ddl = msgspec.msgpack.encode(Change(12, 1_000_020, ALTER, "u", b"{}"))
    assert ddl[:1] == b"\x95"  # five fields: one more, an array `depth` deep
    deep = b"\x96" + ddl[1:] + b"\x91" * depth + b"\x01"
    if version == 1:
        plain = b"\x91" + deep
    else:
        plain = b"\x92\x91" + deep + msgspec.msgpack.encode([_block()])
    with pytest.raises(BackupInvalid, match="nests arrays or maps too deeply"):
        segment.decode(_with_plain(plain, name, version, 3), NS, AID, name)


@pytest.mark.parametrize("kind", [CREATE, ALTER, DROP])
def test_a_ddl_change_nested_too_deep_is_refused(kind: str) -> None:
    """Its JSON is read by msgspec (`options`, `columns`, an unknown field) by
    recursing: a RecursionError past ~1000 levels, a 500."""
    from storage.archive import replay

    for depth in (990, 5000, 100_000):
        data = b'{"uid":"x","zz":' + b'{"abcdefghij":' * depth + b"1" + b"}" * depth + b"}"
        with pytest.raises(BackupInvalid, match=f"{depth + 1} deep, more than 64"):
            replay.replay([], [("s", [Change(12, 1_000_020, kind, "t", data)])], "x")
