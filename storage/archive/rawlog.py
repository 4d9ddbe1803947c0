"""The change log's entries as stored (each the msgpack of one Change), read
in runs of about a given size: what changes.py's reads return and the archiver
hands to its helper process undecoded."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import accumulate


def upto(entries: list[bytes], size: int, max_bytes: int | None) -> tuple[list[bytes], int]:
    """The head of `entries` a read of about `max_bytes` takes when `size`
    bytes are taken already (up to and including the entry that reaches it;
    at least one), and the new size."""
    if max_bytes is None or not entries:
        return entries, size + sum(map(len, entries))
    sizes = list(accumulate(map(len, entries), initial=size))
    if sizes[-1] < max_bytes:
        return entries, sizes[-1]
    cut = max(next(i for i, s in enumerate(sizes) if s >= max_bytes), 1)
    return entries[:cut], sizes[cut]


@dataclass
class RawChanges:
    """Change-log entries as stored, oldest first (each the msgpack of one
    Change), with the newest one's lsn and commit time."""

    entries: list[bytes]
    last_lsn: int
    last_us: int

    def parts(self) -> list[bytes]:
        """The msgpack of the list of these Changes, in pieces: an array
        header, then the entries as they are (no decoding, no re-encoding,
        and no copy: the pieces go to the helper's pipe as they are)."""
        n = len(self.entries)
        head = (bytes((0x90 | n,)) if n < 16 else
                b"\xdc" + struct.pack(">H", n) if n < 1 << 16 else
                b"\xdd" + struct.pack(">I", n))
        return [head, *self.entries]

    def msgpack(self) -> bytes:
        """`parts()` joined."""
        return b"".join(self.parts())
