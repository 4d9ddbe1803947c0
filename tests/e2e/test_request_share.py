"""A role user's share of the HTTP places (server/request_share.py). One role
user's `max_connections` requests whose 1-byte bodies never came held every
place until body_timeout_seconds: every other request, an admin's too, was
503 "too many connections". Now one role user's requests in progress are at
most a quarter of max_connections, role users' together all but three; one
more is 503 before its body is read, and its connection closed at once."""

from __future__ import annotations

import asyncio
from typing import Any

from server.app import create_app
from server.config import Config

TOKENS = [{"token": "t-root", "user": "root", "role": "admin"}] + [
    {"token": f"t-{u}", "user": u, "role": "user"} for u in ("mallory", "bob", "carol")]


async def _slow(client: Any, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose body (1 byte) never comes, its handler started (`100 Continue`)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\n"
                 b"Expect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 100"), head
    return reader, writer


async def _refused(client: Any, token: str) -> tuple[str, bytes]:
    """The answer to one more slow request: its 503, and then the connection closed."""
    reader, writer = await _slow(client, token)
    try:
        out = await asyncio.wait_for(reader.read(), 30)  # to the close, not the body timeout
    finally:
        writer.close()
    assert out.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in out, out
    return out.decode(), out


async def _served(client: Any, token: str) -> None:
    resp = await client.post("/api/sql", json={"sql": "SELECT 7 AS n"},
                             headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"][0]["rows"] == [{"n": 7}]


async def test_one_role_users_slow_requests_hold_a_quarter_of_the_places(
        aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = TOKENS
    cairn_config.server.max_connections = 8  # a quarter: 2; role users together: 5
    client = await aiohttp_client(create_app(cairn_config))
    held = [await _slow(client, "t-mallory") for _ in range(2)]
    try:
        text, _ = await _refused(client, "t-mallory")
        assert "too many requests of user 'mallory'" in text and "max_connections" in text, text
        for token in ("t-bob", "t-root"):  # the others are served meanwhile
            await _served(client, token)
        held += [await _slow(client, "t-bob") for _ in range(2)]
        held.append(await _slow(client, "t-carol"))
        text, _ = await _refused(client, "t-carol")
        assert "kept for admins" in text, text
        await _served(client, "t-root")
        reader, writer = held.pop(0)  # one of mallory's ends: her share has room again
        writer.close()
        for _ in range(300):
            resp = await client.post("/api/sql", json={"sql": "SELECT 7 AS n"},
                                     headers={"Authorization": "Bearer t-mallory"})
            if resp.status == 200:
                break
            await asyncio.sleep(0.02)
        assert resp.status == 200, await resp.text()
    finally:
        for _, writer in held:
            writer.close()
