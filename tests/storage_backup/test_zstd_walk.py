"""A zstd object's end from its headers (storage/backup/zstd_walk.py): whole
exactly when its frames end at its size, every cut refused."""

from __future__ import annotations

import os
import random

import pytest
import zstandard

from storage.backup.codec import ZSTD, Form, encode_bytes
from storage.backup.zstd_walk import BLOCK_MAX, most_blocks, whole

rng = random.Random(7)
CONTENTS = {
    "empty": b"",
    "one byte": b"x",
    "compressible": b"compressible " * 4000,
    "incompressible (raw blocks)": os.urandom(300_000),
    "mixed (compressed blocks)": bytes(rng.choices(b"abc ", k=400_000)),
}


def reader(data: bytes):  # type: ignore[no-untyped-def]
    return lambda pos, n: data[pos:pos + n]


@pytest.mark.parametrize("name", list(CONTENTS))
def test_whole_only_at_its_own_size(name: str) -> None:
    stored = encode_bytes(CONTENTS[name], Form("", ZSTD, None))
    blocks = most_blocks(len(CONTENTS[name]), len(stored))
    assert whole(reader(stored), len(stored), blocks)
    step = 1 if len(stored) < 5000 else 997
    cuts = set(range(0, len(stored), step)) | {len(stored) - k for k in range(1, 8)}
    for cut in sorted(cuts):
        assert not whole(reader(stored[:cut]), cut, blocks), cut
    assert not whole(reader(stored + b"\0"), len(stored) + 1, blocks)
    assert not whole(reader(stored + stored[:5]), len(stored) + 5, blocks)
    assert whole(reader(stored + stored), 2 * len(stored), 2 * blocks)  # two whole frames


def test_not_zstd_is_not_whole() -> None:
    assert not whole(reader(b"PAR1" + b"\0" * 60), 64, 10)
    assert not whole(reader(b"\x28\xb5\x2f\xfd"), 4, 10)  # a magic and nothing after it


def test_an_object_of_more_blocks_than_its_content_needs_is_not_walked_to_its_end() -> None:
    """A hostile target's object of 4-byte blocks (one byte of content each)
    walked a block every 4 bytes: ~0.4 s of CPU for 4 MB, every BACKUP. The
    walk stops past the blocks its content can need: not whole."""
    real = encode_bytes(b"x", Form("", ZSTD, None))
    header = real[:zstandard.frame_header_size(real)]  # a real frame's header
    rle = ((1 << 3) | (1 << 1)).to_bytes(3, "little") + b"x"  # one byte, repeated once
    last = ((1 << 3) | (1 << 1) | 1).to_bytes(3, "little") + b"x"
    checksum = b"\0" * 4 if header[4] & 0x04 else b""
    bomb = header + rle * 100_000 + last + checksum
    reads = []

    def counted(pos: int, n: int) -> bytes:
        reads.append(pos)
        return bomb[pos:pos + n]

    assert whole(reader(bomb), len(bomb), 200_000)  # well formed, with a loose bound
    assert not whole(counted, len(bomb), most_blocks(100_001, len(bomb)))
    assert len(reads) <= most_blocks(100_001, len(bomb)) + 2
    assert most_blocks(100_001, len(bomb)) < 10 <= most_blocks(10 * BLOCK_MAX, 0)
