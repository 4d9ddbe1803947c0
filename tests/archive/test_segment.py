"""Segments read back are hostile: every flipped byte, every crafted header or
body that does not fit is refused with BACKUP_INVALID, and runs/windows follow
the names exactly."""

from __future__ import annotations

import hashlib
import json
import random

import msgspec
import pytest

from catalog.errors import BackupInvalid
from storage.archive import segment, store
from storage.archive.changes import ROWS, Change
from storage.archive.segment import SegmentName

NS, AID = "app", "ar-0123456789abcdefghjk"


def changes(n: int, lsn0: int = 10, at0: int = 1_000_000) -> list[Change]:
    return [Change(lsn0 + 2 * i + 1, at0 + 10 * i + 5, ROWS, "t", bytes([i]) * 40)
            for i in range(n)]


def make(n: int = 3, compress: bool = True) -> tuple[SegmentName, list[Change], bytes]:
    cs = changes(n)
    name = SegmentName(10, cs[-1].lsn if cs else 10, 1_000_000, 2_000_000)
    return name, cs, segment.encode(NS, AID, name, cs, compress, None)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(compress: bool) -> None:
    name, cs, data = make(compress=compress)
    header, back = segment.decode(data, NS, AID, name)
    assert back == cs and header.count == 3
    assert segment.parse_name(name.file) == name


def test_every_flipped_byte_is_refused() -> None:
    name, _, data = make()
    rng = random.Random(7)
    for pos in sorted(rng.sample(range(len(data)), min(len(data), 150))) + [len(data) - 1]:
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(BackupInvalid):
            segment.decode(bytes(bad), NS, AID, name)


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
    {"format_version": 2}, {"count": 2}, {"count": -1}, {"codec": "lz4"},
    {"key": "0" * 32}, {"body_size": 1}, {"plain_size": 1 << 40}, {"extra": 1},
    {"after_lsn": "10"}, {"plain_sha256": "0" * 64},
])
def test_crafted_headers_are_refused(change: dict[str, object]) -> None:
    name, _, data = make()
    with pytest.raises(BackupInvalid):
        segment.decode(_resealed(data, **change), NS, AID, name)


def _with_changes(cs: list[Change], name: SegmentName) -> bytes:
    """A segment whose body is crafted (checksums right, content wrong)."""
    plain = msgspec.msgpack.encode(cs)
    return _resealed(segment.encode(NS, AID, name, cs, False, None), body_size=len(plain),
                     plain_size=len(plain), plain_sha256=hashlib.sha256(plain).hexdigest(),
                     count=len(cs))


@pytest.mark.parametrize("mutate", [
    lambda cs: [cs[1], cs[0], cs[2]],  # out of order
    lambda cs: [*cs[:2], Change(cs[2].lsn, cs[1].at_us, ROWS, "t", b"")],  # time goes back
    lambda cs: [*cs[:2], Change(cs[2].lsn, 3_000_000, ROWS, "t", b"")],  # past through
    lambda cs: [*cs[:2], Change(cs[2].lsn, cs[2].at_us, "truncate", "t", b"")],  # unknown kind
    lambda cs: [*cs[:2], Change(cs[2].lsn, cs[2].at_us, ROWS, "../x", b"")],  # bad table
    lambda cs: [Change(5, cs[0].at_us, ROWS, "t", b""), *cs[1:]],  # before after_lsn
])
def test_crafted_changes_are_refused(mutate: object) -> None:
    name, cs, _ = make()
    bad = mutate(cs)  # type: ignore[operator]
    with pytest.raises(BackupInvalid):
        segment.decode(_with_changes(bad, name), NS, AID, name)


def test_names() -> None:
    assert segment.parse_name("x.seg") is None
    assert segment.parse_name(f"{2:020d}-{1:020d}-{0:017d}-{0:017d}.seg") is None  # last < after
    assert segment.parse_name(f"{0:020d}-{1:020d}-{5:017d}-{4:017d}.seg") is None  # time back
    assert segment.parse_name("../" + SegmentName(0, 1, 2, 3).file) is None


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


def test_times() -> None:
    us = store.parse_us("2026-12-01T10:00:00.123456Z")
    assert store.parse_us("2026-12-01T10:00:00.123456") == us  # no zone: UTC
    assert store.parse_us("2026-12-01T11:00:00.123456+01:00") == us
    assert store.iso(us) == "2026-12-01T10:00:00.123Z"
