"""What a request holds of the server's memory and time while its client is
slow or gone: a half-sent compressed body, an answer read slowly, the
statements of a request whose client hung up."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
import zlib
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import rows


def _head(length: int, *extra: str) -> bytes:
    lines = ["POST /api/sql HTTP/1.1", "Host: x", "Content-Type: application/json",
             f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return int(head.split(b" ")[1]), json.loads(await reader.readexactly(length))


# --- a compressed body sent in part ---------------------------------------------


async def test_a_half_sent_gzip_body_holds_only_what_was_sent(client: Any) -> None:
    """aiohttp decoded a gzip body as it came and kept what it decoded until the
    body ended: 10 KB of gzip decoding to 10 MB (Z_SYNC_FLUSH, never ended)
    with a Content-Length a little larger held 10 MB per connection until
    body_timeout_seconds (40 connections: +1.3 GB). Now a body is decoded once
    all of it has arrived: a stalled sender holds what it sent."""
    raw = json.dumps({"sql": "SELECT 1 AS one", "namespace": None}).encode()
    raw = raw[:-1] + b" " * (4 << 20) + b"}"  # 4 MiB of JSON
    held = []
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            coder = zlib.compressobj(9, zlib.DEFLATED, 31)
            part = coder.compress(raw) + coder.flush(zlib.Z_SYNC_FLUSH)
            rest = coder.flush()
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(_head(len(part) + len(rest), "Content-Encoding: gzip") + part)
            await writer.drain()
            held.append((reader, writer, rest))
        # A full answer on another connection: the server has read what came before.
        assert await rows(client, "SELECT 2 AS two") == [{"two": 2}]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
        assert grown < 2 << 20, f"{grown} bytes held for 3 bodies of ~{len(part)} bytes sent"
        for reader, writer, rest in held:  # the rest comes: each is answered
            writer.write(rest)
            status, body = await _answer(reader)
            assert status == 200, body
            assert body["results"][0]["rows"] == [{"one": 1}]
    finally:
        tracemalloc.stop()
        for _, writer, _ in held:
            writer.close()


async def test_a_gzip_body_that_does_not_end_is_refused(client: Any) -> None:
    coder = zlib.compressobj(9, zlib.DEFLATED, 31)
    part = coder.compress(b'{"sql": "SELECT 1"}') + coder.flush(zlib.Z_SYNC_FLUSH)
    resp = await client.post("/api/sql", data=part, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["code"] == "INVALID_REQUEST", error
    assert "Content-Encoding (gzip)" in error["message"], error


@pytest.mark.parametrize("wbits", [31, 15, -15])  # gzip; deflate in zlib framing and bare
async def test_compressed_bodies_are_decoded(client: Any, wbits: int) -> None:
    coder = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = coder.compress(b'{"sql": "SELECT 3 AS three"}') + coder.flush()
    encoding = "gzip" if wbits > 15 else "deflate"
    resp = await client.post("/api/sql", data=body, headers={
        "Content-Type": "application/json", "Content-Encoding": encoding.upper()})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"][0]["rows"] == [{"three": 3}]


async def test_gzip_members_back_to_back_are_one_body(client: Any) -> None:
    text = b'{"sql": "SELECT 4 AS four"}'
    body = b"".join(zlib.compress(text[i:i + 5], wbits=31) for i in range(0, len(text), 5))
    resp = await client.post("/api/sql", data=body, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"][0]["rows"] == [{"four": 4}]


async def test_a_body_over_max_request_bytes_decoded_is_413(
        aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.server.max_request_bytes = 100_000
    client = await aiohttp_client(create_app(cairn_config))
    body = zlib.compress(b'{"sql": "SELECT 1' + b" " * 100_000 + b'"}', wbits=31)
    resp = await client.post("/api/sql", data=body, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    error = (await resp.json())["error"]
    assert resp.status == 413 and error["code"] == "REQUEST_TOO_LARGE", error
    assert "max_request_bytes (100000 bytes)" in error["message"]
