"""Whether a stored zstd object is whole, from its frame and block headers.

A zstd object's size does not follow from its content's (codec.py), so a
BACKUP about to reuse one cannot tell by a stat that it was cut short, and a
reread to check it costs as much as VERIFY. Its headers say where it ends: a
frame header (`zstandard.frame_header_size`), then blocks, each with a 3-byte
header giving its type, its size and whether it is the last, then the
4-byte checksum when the frame has one; a whole object is frames that end
exactly at its size. That takes a few small reads an object (one block per
128 KiB of compressed bytes). A byte changed inside a block, which keeps the
size, is VERIFY's to find, as it is for a raw object."""

from __future__ import annotations

from collections.abc import Callable

import zstandard

MAGIC = b"\x28\xb5\x2f\xfd"
FRAME_HEADER_MAX = 18  # magic, descriptor, window, dictionary id, content size
_RAW, _RLE, _COMPRESSED, _RESERVED = range(4)


BLOCK_MAX = 128 * 1024  # the most content a zstd block holds


def most_blocks(plain_size: int | None, size: int) -> int:
    """How many blocks an object Cairn wrote may have: its encoder fills each
    block but the last, so twice the least, and a few more. A target is
    hostile: an object of 4-byte blocks (each one byte of content) would be
    walked a block every 4 bytes, ~100 s of CPU a GiB, every BACKUP. One past
    this is not taken as whole (and is stored again)."""
    if plain_size is None:
        return size // 4 + 1  # no bound known: each block is 4 bytes at least
    return 2 * (plain_size // BLOCK_MAX) + 4


def whole(read_at: Callable[[int, int], bytes], size: int, blocks: int) -> bool:
    """Whether the zstd frames read by `read_at(offset, n)` end exactly at `size`
    (never at 0: empty content encodes to a frame of 13 bytes), in at most
    `blocks` blocks (`most_blocks`)."""
    if size <= 0:
        return False
    pos = 0
    while pos < size:
        head = read_at(pos, FRAME_HEADER_MAX)
        if head[:4] != MAGIC:
            return False
        try:
            pos += zstandard.frame_header_size(head)
        except zstandard.ZstdError:
            return False
        checksum = bool(head[4] & 0x04)
        last = False
        while not last:
            blocks -= 1
            block = read_at(pos, 3)
            if blocks < 0 or len(block) < 3:
                return False
            value = int.from_bytes(block, "little")
            last, kind, length = bool(value & 1), (value >> 1) & 3, value >> 3
            if kind == _RESERVED:
                return False
            pos += 3 + (1 if kind == _RLE else length)
            if pos > size:
                return False
        pos += 4 if checksum else 0
    return pos == size
