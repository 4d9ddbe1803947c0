"""A compressed request body, decoded only once all of it has arrived.

aiohttp decodes a `Content-Encoding` body as it comes in, and keeps what it
decoded until the body ends: a client that sent 10 KB of gzip (decoding to
10 MB, `Z_SYNC_FLUSH`, never ended) with a `Content-Length` a little larger,
and waited, held 10 MB of the server's memory per connection until
`body_timeout_seconds` (40 such connections: +1.3 GB). The app asks aiohttp
not to decode (`auto_decompress=False`); the body is read as it was sent,
bounded by `max_request_bytes`, and decoded here once it is complete, the
decoded bytes bounded by `max_request_bytes` too. So a client that stops
half-way holds only what it sent."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from catalog.errors import RequestTooLarge

# What aiohttp would have decoded (it reads the header this way), and of those
# what is decoded here: brotli and zstd are not installed.
RECOGNISED = frozenset({"gzip", "deflate", "br", "zstd"})
DECODED = frozenset({"gzip", "deflate"})
# Input fed to the decoder at a time: a member that ends inside it leaves only
# the rest of this window to copy (a fresh decoder per member, as aiohttp does:
# feeding the whole remaining body each time is quadratic).
WINDOW = 1 << 16
MAX_MEMBERS = 1024  # concatenated gzip members in one body, as aiohttp allows


class BadEncoding(ValueError):
    """The body does not decode as its Content-Encoding says."""


def encoding_of(headers: Mapping[str, str]) -> str | None:
    """The body's Content-Encoding as aiohttp reads it (ASCII, any case), if it
    is one aiohttp would decode; None for a body to take as it came."""
    enc = headers.get("Content-Encoding", "")
    if not enc.isascii():
        return None
    enc = enc.lower()
    return enc if enc in RECOGNISED else None


def decode(raw: bytes, encoding: str, limit: int) -> bytes:
    """`raw` decoded as `encoding` says; RequestTooLarge past `limit` decoded
    bytes (0: no limit), BadEncoding if it does not decode or does not end."""
    if encoding not in DECODED:
        raise BadEncoding(f"Content-Encoding {encoding} is not decoded here: send gzip or deflate")
    if not raw:
        return b""
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif raw[0] & 0xF == 8:  # RFC 1950 (zlib) framing
        wbits = zlib.MAX_WBITS
    else:  # a bare deflate stream, as aiohttp accepts it
        wbits = -zlib.MAX_WBITS
    view = memoryview(raw)
    parts: list[bytes] = []
    size = pos = members = 0
    while pos < len(raw):
        members += 1
        if members > MAX_MEMBERS:
            raise BadEncoding(f"more than {MAX_MEMBERS} compressed members")
        decoder = zlib.decompressobj(wbits)
        while not decoder.eof:
            if pos >= len(raw):
                raise BadEncoding("the compressed stream does not end" if members == 1 else
                                  "bytes after its compressed stream are no stream of their own")
            end = min(pos + WINDOW, len(raw))
            try:
                chunk = decoder.decompress(view[pos:end], limit + 1 - size if limit else 0)
            except zlib.error:
                raise BadEncoding("not a compressed stream" if members == 1 else "bytes after "
                                  "its compressed stream are no stream of their own") from None
            size += len(chunk)
            if limit and size > limit:
                raise RequestTooLarge(
                    f"request body is larger than max_request_bytes ({limit} bytes)")
            parts.append(chunk)
            left = decoder.unused_data if decoder.eof else decoder.unconsumed_tail
            pos = end - len(left)
    return b"".join(parts)
