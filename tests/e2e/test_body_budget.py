"""Request bodies being received, all connections together (`[server]
max_inflight_request_bytes`, server/budget.py). Each body was bounded alone:
60 connections each sending a 10 MB body but its last byte held +684 MB for
body_timeout_seconds (1,000 connections: ~11 GB)."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

from server.app import CAIRN, create_app
from server.config import Config

REQUEST = 64 * 1024  # max_request_bytes
BUDGET = 150_000  # max_inflight_request_bytes: two bodies of 60 KB, not three


def _body(size: int) -> bytes:
    head = b'{"sql": "SELECT \''
    return head + b"x" * (size - len(head) - 13) + b'\' AS c"}'.ljust(13)


async def _stalled(client: Any, body: bytes, token: str = ""
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sends all of its body but the last byte, and waits."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + auth + b"Content-Length: %d\r\n\r\n" % len(body) + body[:-1])
    await writer.drain()
    return reader, writer


async def test_bodies_past_the_servers_budget_are_503_until_one_ends(
        aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.server.max_request_bytes = REQUEST
    cairn_config.server.max_inflight_request_bytes = BUDGET
    client = await aiohttp_client(create_app(cairn_config))
    body = _body(60_000)
    assert json.loads(body)["sql"].startswith("SELECT '")
    held = [await _stalled(client, body) for _ in range(2)]
    try:
        cairn = client.app[CAIRN]
        for _ in range(200):  # their handlers have started reading
            if cairn.inflight.used >= 120_000:
                break
            await asyncio.sleep(0.01)
        resp = await client.post("/api/sql", data=body,
                                 headers={"Content-Type": "application/json"})
        answer = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"] == "1", answer
        assert answer["error"]["code"] == "UNAVAILABLE"
        assert "max_inflight_request_bytes" in answer["error"]["message"]
        # A small body still fits: other clients are answered.
        resp = await client.post("/api/sql", json={"sql": "SELECT 42 AS n"})
        assert resp.status == 200 and (await resp.json())["results"][0]["rows"] == [{"n": 42}]
        reader, writer = held.pop()
        writer.close()  # its handler ends: its body's bytes are given back
        for _ in range(200):
            resp = await client.post("/api/sql", data=body,
                                     headers={"Content-Type": "application/json"})
            if resp.status == 200:
                break
            await asyncio.sleep(0.01)
        assert resp.status == 200, await resp.text()
        reader, writer = held.pop()
        writer.write(body[-1:])  # the last byte: the stalled request is answered
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        writer.close()
        assert cairn.inflight.used == 0  # nothing leaked
    finally:
        for _, writer in held:
            writer.close()


async def test_what_a_compressed_body_decodes_to_counts_too(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """A body counted for its Content-Length only: 10 KB of gzip decoding to
    10 MB was held outside the budget while its statements ran."""
    cairn_config.server.max_request_bytes = REQUEST
    cairn_config.server.max_inflight_request_bytes = BUDGET
    client = await aiohttp_client(create_app(cairn_config))
    cairn = client.app[CAIRN]
    packed = gzip.compress(_body(50_000))
    assert len(packed) < 1_000
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    held = [await _stalled(client, _body(60_000)) for _ in range(2)]
    try:
        for _ in range(200):
            if cairn.inflight.used >= 120_000:
                break
            await asyncio.sleep(0.01)
        resp = await client.post("/api/sql", data=packed, headers=headers)
        answer = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"] == "1", answer
        assert "max_inflight_request_bytes" in answer["error"]["message"]
        assert cairn.inflight.used < 121_000  # the refused one's bytes given back
        reader, writer = held.pop()
        writer.close()
        for _ in range(200):
            resp = await client.post("/api/sql", data=packed, headers=headers)
            if resp.status == 200:
                break
            await asyncio.sleep(0.01)
        assert resp.status == 200, await resp.text()
        assert len((await resp.json())["results"][0]["rows"][0]["c"]) > 49_000
        reader, writer = held.pop()
        writer.close()
        for _ in range(200):
            if cairn.inflight.used == 0:
                break
            await asyncio.sleep(0.01)
        assert cairn.inflight.used == 0  # nothing leaked, the decoded bytes neither
    finally:
        for _, writer in held:
            writer.close()


async def test_one_role_user_holds_at_most_a_quarter_and_others_are_answered(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """Until 2026-12-06 any one user could hold the whole budget: a role
    user's stalled bodies made every other user's requests 503. Now a role
    user holds at most a quarter of it (never less than two bodies of
    max_request_bytes); admins are held by the whole budget only."""
    cairn_config.server.max_request_bytes = REQUEST
    cairn_config.server.max_inflight_request_bytes = 4 * BUDGET  # share: 150,000
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-eve", "user": "eve", "role": "user"},
                                {"token": "t-bob", "user": "bob", "role": "user"},
                                {"token": "t-adm", "user": "adm", "role": "admin"}]
    client = await aiohttp_client(create_app(cairn_config))
    cairn = client.app[CAIRN]
    body = _body(60_000)

    def post(token: str) -> Any:
        return client.post("/api/sql", data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})

    held = [await _stalled(client, body, "t-eve") for _ in range(2)]
    try:
        for _ in range(200):
            if cairn.inflight.held_by("eve") >= 120_000:
                break
            await asyncio.sleep(0.01)
        resp = await post("t-eve")
        answer = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"] == "1", answer
        assert "user 'eve'" in answer["error"]["message"]
        assert "its share (150000)" in answer["error"]["message"]
        for token in ("t-bob", "t-adm"):  # the others are answered
            resp = await post(token)
            assert resp.status == 200, await resp.text()
        held += [await _stalled(client, body, "t-adm") for _ in range(4)]  # admins: no share
        for _ in range(200):
            if cairn.inflight.held_by(None) >= 360_000:
                break
            await asyncio.sleep(0.01)
        assert cairn.inflight.held_by(None) >= 360_000
    finally:
        for _, writer in held:
            writer.close()
    for _ in range(200):
        if cairn.inflight.used == 0:
            break
        await asyncio.sleep(0.01)
    assert cairn.inflight.used == 0 and cairn.inflight.by == {}
