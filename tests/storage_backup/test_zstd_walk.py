"""A zstd object's end from its headers (storage/backup/zstd_walk.py): whole
exactly when its frames end at its size, every cut refused."""

from __future__ import annotations

import os
import random

import pytest

from storage.backup.codec import ZSTD, Form, encode_bytes
from storage.backup.zstd_walk import whole

rng = random.Random(7)
CONTENTS = {
    "empty": b"",
    "one byte": b"x",
    "compressible": b"compressible " * 4000,
    "incompressible (raw blocks)": os.urandom(300_000),
    "mixed (compressed blocks)": bytes(rng.choice(b"abc ") for _ in range(400_000)),
}


def reader(data: bytes):  # type: ignore[no-untyped-def]
    return lambda pos, n: data[pos:pos + n]


@pytest.mark.parametrize("name", list(CONTENTS))
def test_whole_only_at_its_own_size(name: str) -> None:
    stored = encode_bytes(CONTENTS[name], Form("", ZSTD, None))
    assert whole(reader(stored), len(stored))
    step = 1 if len(stored) < 5000 else 997
    cuts = set(range(0, len(stored), step)) | {len(stored) - k for k in range(1, 8)}
    for cut in sorted(cuts):
        assert not whole(reader(stored[:cut]), cut), cut
    assert not whole(reader(stored + b"\0"), len(stored) + 1)
    assert not whole(reader(stored + stored[:5]), len(stored) + 5)
    assert whole(reader(stored + stored), 2 * len(stored))  # two whole frames


def test_not_zstd_is_not_whole() -> None:
    assert not whole(reader(b"PAR1" + b"\0" * 60), 64)
    assert not whole(reader(b"\x28\xb5\x2f\xfd"), 4)  # a magic and nothing after it
