"""What a request holds of the server's memory and time while its client is
slow or gone: a half-sent compressed body, an answer read slowly, the
statements of a request whose client hung up."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server import app, statement_count
from server.app import CAIRN, connection_options, create_app
from server.config import Config
from tests.helpers import err, ok, rows, sql


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
    assert "does not end" in error["message"], error
    # a whole stream with a stray byte after it: not "does not end"
    stray = zlib.compress(b'{"sql": "SELECT 1"}', wbits=31) + b"\n"
    resp = await client.post("/api/sql", data=stray, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    error = (await resp.json())["error"]
    assert resp.status == 400 and "bytes after its compressed stream" in error["message"], error


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


# --- an answer read slowly ------------------------------------------------------


def _request(text: str, *extra: str) -> bytes:
    body = json.dumps({"sql": text}).encode()
    return _head(len(body), *extra) + body


async def _open_small(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose socket takes little before the client reads it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock, limit=65536)


async def test_an_answer_being_sent_holds_only_its_bytes(client: Any) -> None:
    """While a large answer was sent, the request also kept its rows and their
    JSON-ready copies: ~3x the answer for as long as the client took to read
    it (5 slow readers of 40 MB answers: +570 MB). Now only the encoded answer."""
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        reader, writer = await _open_small(client.host, client.port)
        try:
            writer.write(_request("SELECT repeat('a', 100000) AS x FROM range(60)"))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(1000)  # the answer is being sent, and waits on us
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - baseline
            # Not counting what app.py allocated itself (the encoded answer: msgspec
            # reserves more than it writes), what else is held?
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, app.__file__)])
            other = sum(stat.size for stat in snapshot.statistics("filename"))
        finally:
            writer.close()
    finally:
        tracemalloc.stop()
    assert length > 6_000_000
    assert other < length / 3, f"{other} bytes held beside a {length}-byte answer ({grown} in all)"


@pytest.fixture
async def send_bounded(aiohttp_client: Any, cairn_config: Config,
                       monkeypatch: pytest.MonkeyPatch) -> Any:
    cairn_config.server.send_timeout_seconds = 2.0
    monkeypatch.setattr(app, "MIN_SEND_RATE", 4 << 20, raising=False)
    return await aiohttp_client(create_app(cairn_config))


async def test_a_client_reading_its_answer_slowly_is_disconnected(send_bounded: Any) -> None:
    """send_timeout_seconds bounded each MiB's send, not the whole: a client
    reading a little at a time (20 KB/s) held a 64 MiB answer ~55 minutes.
    Now the whole must go within send_timeout_seconds + its size at
    MIN_SEND_RATE (here 2 s + 8 MiB at 4 MiB/s: 4 s); this client reads 1 MiB/s,
    each MiB well within send_timeout_seconds, and is cut off half-way."""
    reader, writer = await _open_small(send_bounded.host, send_bounded.port)
    writer.write(_request("SELECT repeat('a', 1000000) AS x FROM range(8)"))
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    got = 0
    try:
        while got < length:
            chunk = await reader.read(128 << 10)
            if not chunk:
                break
            got += len(chunk)
            await asyncio.sleep(0.125)
    finally:
        writer.close()
    assert length > 8_000_000
    assert 0 < got < length, (got, length)


# --- a request's statements -----------------------------------------------------


async def test_more_statements_than_the_bound_run_none(client: Any) -> None:
    """One request of 100,000 x `SELECT 1;` ran 84 s of a core and held every
    result (+420 MB). A request holds at most 10,000 statements; past it none
    runs, not even the first."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY)")
    status, body = await sql(client, "INSERT INTO app.t VALUES (1);" + "SELECT 1;" * 10_000)
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "INVALID_ARGUMENT" and "10,000 statements" in error["message"]
    assert error["statement"] == 10_001 and body["results"] == []
    assert await rows(client, "SELECT count(*) AS n FROM app.t") == [{"n": 0}]


async def test_semicolons_that_are_not_statements_do_not_count(client: Any) -> None:
    text = ";" * 10_001
    assert await rows(client, f"SELECT '{text}' AS s; -- {text}") == [{"s": text}]


async def test_the_statement_bound(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statement_count, "MAX_STATEMENTS", 3)
    assert len(await ok(client, "SELECT 1; SELECT 2; SELECT 3;")) == 3
    message = await err(client, "SELECT 1;\nSELECT 2; SELECT 3;\n  SELECT 4", "INVALID_ARGUMENT")
    assert "at most 3 statements" in message and "none of them ran" in message


@pytest.fixture
async def served(cairn_config: Config) -> AsyncIterator[tuple[int, Any]]:
    """The server as `cairn serve` runs it (aiohttp's test server cancels a
    handler whose client hangs up; `web.AppRunner` does not)."""
    runner = web.AppRunner(create_app(cairn_config), **connection_options(cairn_config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], runner.app[CAIRN]
    finally:
        await runner.cleanup()


async def test_a_request_stops_when_its_client_hangs_up(served: tuple[int, Any]) -> None:
    """A client that sent 200,000 statements and hung up after 5 s kept the
    server busy for minutes. Now the statements after the running one do not
    run once the client has gone (those before keep their effect)."""
    port, cairn = served
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        async def run(text: str) -> list[dict[str, Any]]:
            async with session.post("/api/sql", json={"sql": text}) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                return list(body["results"][-1]["rows"])

        await run("CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY)")
        many = 3000
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request("".join(f"INSERT INTO app.t VALUES ({i});" for i in range(many))))
        await writer.drain()
        for _ in range(3000):
            if (await run("SELECT count(*) AS n FROM app.t"))[0]["n"] > 0:
                break
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        for _ in range(6000):  # the hung-up request ends
            if cairn.statements.running == 0:
                break
            await asyncio.sleep(0.02)
        assert cairn.statements.running == 0
        count = (await run("SELECT count(*) AS n FROM app.t"))[0]["n"]
    assert 0 < count < many / 2, count
