"""Answers built and not yet sent, all connections together (`[server]
max_answer_bytes_total`, server/answers.py). Nothing bounded them: one role
user's 24 connections each sending a ~60 MB SELECT and reading nothing grew
the server by 1.9 GB, and 1.2 GB of it stayed after the sockets closed."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from server.app import CAIRN, create_app
from server.config import Config

# An answer of ~10 MB: more than the kernel's socket buffers take from a
# client that reads nothing (4 MB at most), so its send waits while the test runs.
BIG = "SELECT i, repeat('x', 1000) || i AS v FROM range(10000) t(i)"
RESULT = 12 * 1024 * 1024  # max_result_bytes: the floor, 2 of them, is a role user's share
TOTAL = 64 * 1024 * 1024  # max_answer_bytes_total: a share is 24 MiB, two answers not three
EVE, BOB, ROOT = "t-eve", "t-bob", "t-root"


def _configure(cfg: Config, send_timeout: float = 60.0) -> None:
    cfg.server.max_result_bytes = RESULT
    cfg.server.max_answer_bytes_total = TOTAL
    cfg.server.send_timeout_seconds = send_timeout
    cfg.auth.mode = "token"
    cfg.auth.tokens = [{"token": EVE, "user": "eve", "role": "user"},
                       {"token": BOB, "user": "bob", "role": "user"},
                       {"token": ROOT, "user": "root", "role": "admin"}]


async def _unread(client: Any, sql: str, token: str) -> asyncio.StreamWriter:
    """A connection that sends its request and never reads its answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
    _, writer = await asyncio.open_connection(sock=sock, limit=4096)
    body = json.dumps({"sql": sql}).encode()
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (token.encode(),
                                                                            len(body)) + body)
    await writer.drain()
    return writer


async def _until(check: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the state never came"
        await asyncio.sleep(0.02)


def _metric(text: str, name: str) -> float:
    return next(float(line.split()[1]) for line in text.splitlines()
                if line.startswith(name + " "))


async def _sql(client: Any, sql: str, token: str) -> tuple[int, Any, Any]:
    resp = await client.post("/api/sql", json={"sql": sql},
                             headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json(), resp.headers


async def test_a_role_user_holds_a_quarter_of_the_answers_and_others_are_answered(
        aiohttp_client: Any, cairn_config: Config) -> None:
    _configure(cairn_config)
    client = await aiohttp_client(create_app(cairn_config))
    budget = client.app[CAIRN].answers
    assert budget.share == 24 * 1024 * 1024
    held = [await _unread(client, BIG, EVE) for _ in range(2)]
    try:
        await _until(lambda: budget.held_by("eve") > 20_000_000)  # both being sent
        status, body, headers = await _sql(client, BIG, EVE)  # a third does not fit her share
        assert status == 503 and headers["Retry-After"] == "1", body
        assert body["error"]["code"] == "UNAVAILABLE"
        message = body["error"]["message"]
        assert "user 'eve' holds" in message and "share" in message, message
        assert "[server] max_answer_bytes_total (67108864)" in message, message
        # Another user is answered at once, and an admin's big answer fits the whole.
        started = time.monotonic()
        status, body, _ = await _sql(client, "SELECT 42 AS n", BOB)
        assert status == 200 and body["results"][0]["rows"] == [{"n": 42}]
        assert time.monotonic() - started < 15
        status, body, _ = await _sql(client, BIG, ROOT)
        assert status == 200 and body["results"][0]["row_count"] == 10000
        metrics = await (await client.get("/metrics",
                                          headers={"Authorization": f"Bearer {ROOT}"})).text()
        assert _metric(metrics, "cairn_answer_refusals_total") == 1
        assert _metric(metrics, "cairn_answer_bytes_held") == budget.used > 20_000_000
        for writer in held:
            writer.close()  # their sends end: what they held is the server's again
        await _until(lambda: budget.used == 0)
        assert budget.held_by("eve") == 0 and not budget.by
        status, body, _ = await _sql(client, BIG, EVE)
        assert status == 200 and body["results"][0]["row_count"] == 10000
        assert budget.used == 0
    finally:
        for writer in held:
            writer.close()


async def test_an_answer_whose_send_times_out_is_given_back(
        aiohttp_client: Any, cairn_config: Config) -> None:
    _configure(cairn_config, send_timeout=1.0)
    client = await aiohttp_client(create_app(cairn_config))
    budget = client.app[CAIRN].answers
    writer = await _unread(client, BIG, EVE)
    try:
        await _until(lambda: budget.held_by("eve") > 9_000_000)
        started = time.monotonic()
        await _until(lambda: budget.used == 0)  # the client never reads: only the timeout ends it
        assert time.monotonic() - started < 15
    finally:
        writer.close()


async def test_an_answer_larger_than_the_share_is_refused_as_never_fitting(
        aiohttp_client: Any, cairn_config: Config) -> None:
    _configure(cairn_config)
    cairn_config.server.max_result_bytes = 0  # no bound, and no floor: a share is 12 MiB
    cairn_config.server.max_answer_bytes_total = 48 * 1024 * 1024
    client = await aiohttp_client(create_app(cairn_config))
    status, body, _ = await _sql(client, "SELECT repeat('x', 1000) AS v FROM range(40000)", EVE)
    assert status == 503, body
    assert "never fits" in body["error"]["message"], body
    assert client.app[CAIRN].answers.used == 0
    status, body, _ = await _sql(client, "SELECT repeat('x', 1000) AS v FROM range(40000)", ROOT)
    assert status == 200 and body["results"][0]["row_count"] == 40000
