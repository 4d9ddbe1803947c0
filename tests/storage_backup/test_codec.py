"""Object encodings: AES-256-GCM frames, zstd, keyed names, the compression probe."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.errors import BackupInvalid
from storage.backup.codec import (
    RAW,
    ZSTD,
    decode,
    encode_bytes,
    form_of,
    forms,
    identify,
    sample,
    worth_compressing,
)
from storage.backup.crypto import FRAME, HEADER_SIZE, TAG, new_key_file, stored_size

SHA = "ab" * 32
_, _, KEYS = new_key_file("unit test passphrase")
_, _, OTHER = new_key_file("another passphrase")


def roundtrip(data: bytes, encoding: str, keys: object = KEYS) -> bytes:
    form = form_of(SHA, encoding, keys)  # type: ignore[arg-type]
    return b"".join(decode(io.BytesIO(encode_bytes(data, form)), form, "object x"))


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 2 * FRAME, 2 * FRAME + 5])
def test_frames_round_trip_and_sizes(size: int) -> None:
    data = os.urandom(size)
    form = form_of(SHA, RAW, KEYS)
    stored = encode_bytes(data, form)
    assert len(stored) == stored_size(size) == form.stored_size(size)
    assert roundtrip(data, RAW) == data
    assert roundtrip(data, ZSTD) == data


def test_every_tampering_is_caught() -> None:
    data = os.urandom(2 * FRAME + 100)
    form = form_of(SHA, RAW, KEYS)
    stored = encode_bytes(data, form)

    def opens(blob: bytes, f: object = form) -> bool:
        try:
            b"".join(decode(io.BytesIO(blob), f, "object x"))  # type: ignore[arg-type]
        except BackupInvalid:
            return False
        return True

    assert opens(stored)
    for at in (0, 9, HEADER_SIZE - 1, HEADER_SIZE, FRAME, len(stored) // 2, len(stored) - 1):
        flipped = bytearray(stored)
        flipped[at] ^= 0x01
        assert not opens(bytes(flipped)), at
    frame = FRAME + TAG
    assert not opens(stored[: HEADER_SIZE + 2 * frame])  # the final frame dropped
    assert not opens(stored[: HEADER_SIZE + frame] + stored[HEADER_SIZE + 2 * frame :])
    assert not opens(stored + stored[HEADER_SIZE : HEADER_SIZE + frame])  # a frame appended
    assert not opens(stored + b"x")
    assert not opens(stored, form_of("cd" * 32, RAW, KEYS))  # another object's name
    assert not opens(stored, form_of(SHA, RAW, OTHER))  # another key
    assert not opens(stored, form_of(SHA, ZSTD, KEYS))  # another encoding


def test_names() -> None:
    raw, packed = forms(SHA, None, compress=True)
    assert (raw.oid, raw.encoding) == (SHA, RAW)  # format 1: named by its sha256
    assert packed.oid != SHA and packed.encoding == ZSTD
    assert [f.oid for f in forms(SHA, None, compress=False)] == [SHA]
    keyed = forms(SHA, KEYS, compress=True)
    assert SHA not in {f.oid for f in keyed}
    assert {f.oid for f in keyed}.isdisjoint(f.oid for f in forms(SHA, OTHER, compress=True))
    for form in [raw, packed, *keyed]:
        assert identify(form.oid, SHA, [KEYS]) == form
    assert identify(keyed[0].oid, SHA, []) is None  # without the key, unrecognisable


def test_compression_probe() -> None:
    assert not worth_compressing(b"")
    assert not worth_compressing(os.urandom(100_000))
    assert worth_compressing(b"rows and rows of text " * 5000)
    n = 200_000
    table = pa.table({"id": pa.array(range(n), pa.int64()),
                      "v": pa.array([os.urandom(16).hex() for _ in range(n)])})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    assert not worth_compressing(sample(buf, len(buf.getvalue())))  # zstd-Parquet: as is
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none")
    assert worth_compressing(sample(buf, len(buf.getvalue())))
