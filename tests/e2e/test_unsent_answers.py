"""An answer the client never reads, left in the server's write buffer below
its high-water mark (limits._Counted): the send_timeout_seconds clock runs on
it too. A real aiohttp server on a real socket, counted by limits.Connections;
the listening socket's small SO_SNDBUF (inherited by the connection) makes
what the kernel takes small and fixed, as a loaded machine's may be."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from server import limits
from server.request_share import count_answers

ANSWER = 40_000  # bytes: past what the kernel takes here, under the 64 KiB high water


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * ANSWER)


async def test_an_answer_left_below_high_water_is_not_held_for_good() -> None:
    """GET of a 40 KB answer (a static file's size; no token needed), the
    client reading none of it, the kernel taking ~10 KB: the rest stayed in
    the write buffer below the high-water mark, so pause_writing never came
    and no send_timeout ran; aiohttp's keep-alive close waited for the buffer
    to empty. The connection held its place for good (never idle with bytes
    to send): max_connections of them had every newcomer answered 503."""
    app = web.Application()
    count_answers(app)
    app.router.add_get("/big", _big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    connections = limits.Connections(lambda: 4, send_timeout=1.0)
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(connections.factory(runner.server), sock=listening)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    client.setblocking(False)
    try:
        await loop.sock_connect(client, listening.getsockname())
        await loop.sock_sendall(client, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = loop.time() + 60
        while connections.open == 0 and loop.time() < deadline:  # it is counted
            await asyncio.sleep(0.05)
        assert connections.open == 1
        while connections.open and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert connections.open == 0, "the connection still holds its place"
    finally:
        client.close()
        server.close()
        await runner.cleanup()
