"""Every answer carries the anti-framing headers and `nosniff`: the console's
page under either of its names, its files, the API's answers and errors, and
the answers aiohttp makes itself (404, 405, 413, 417, a 500 from outside the
error middleware). `/static/index.html`, the same working console as `/`,
was sent without them, and another site framed it under a decoy page
(clickjacking: a click on Run in the frame ran SQL, as admin in mode none)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server import app as app_module
from server.app import create_app
from server.config import Config
from tests.helpers import raw_http as raw

FRAMING = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


def protected(headers: Any, what: str) -> None:
    for name, value in FRAMING.items():
        assert headers.get(name) == value, (what, name, dict(headers))
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), (
        what, dict(headers))


async def test_every_answer_forbids_framing_and_sniffing(
        aiohttp_client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    cairn_config.server.max_request_bytes = 4096
    client = await aiohttp_client(create_app(cairn_config))
    json_type = {"Content-Type": "application/json"}
    seen: set[int] = set()

    async def check(method: str, path: str, status: int, **kw: Any) -> Any:
        resp = await client.request(method, path, **kw)
        await resp.read()
        assert resp.status == status, (method, path, resp.status)
        protected(resp.headers, f"{method} {path} -> {resp.status}")
        seen.add(resp.status)
        return resp

    # The console, by both of its names, and its files.
    await check("GET", "/", 200)
    await check("HEAD", "/", 200)
    page = await check("GET", "/static/index.html", 200)
    assert b"console.js" in await page.read()
    script = await check("GET", "/static/console.js", 200)
    await check("GET", "/static/console.js", 304,
                headers={"If-None-Match": script.headers["ETag"]})
    await check("GET", "/static/nope.js", 404)
    await check("GET", "/static/" + "a" * 300, 404)
    # The router's own answers.
    await check("GET", "/nope", 404)
    await check("GET", "/api/nope", 404)
    await check("DELETE", "/api/sql", 405)
    await check("POST", "/health", 405)
    # The API's answers and errors.
    await check("GET", "/health", 200)
    await check("GET", "/health", 403, headers={"Host": "rebound.example"})
    await check("GET", "/metrics", 200)
    await check("GET", "/api/openapi.json", 200)
    await check("POST", "/api/sql", 200, json={"sql": "SELECT 1"})
    await check("POST", "/api/sql", 400, data=b"{", headers=json_type)
    await check("POST", "/api/sql", 400, json={"sql": "SELEC 1"})
    await check("POST", "/api/sql", 413, data=b"{" + b" " * 8000 + b"}", headers=json_type)
    # A large answer, written a chunk at a time (app.send_answer).
    big = await check("POST", "/api/sql", 200,
                      json={"sql": "SELECT md5(i::TEXT) AS s FROM range(60000) r(i)"})
    assert len(await big.read()) > app_module.SEND_CHUNK
    # A bug outside the error middleware: aiohttp's own 500.
    monkeypatch.setattr(app_module.metrics, "statement_kind", lambda sql: 1 / 0)
    await check("POST", "/api/sql", 500, json={"sql": "SELECT 1"})
    monkeypatch.undo()

    # Answers of the expect handlers, which run before any middleware (the body
    # is never sent: the answer comes without it).
    for expect, length, status in (("200-ok", 20, 417),
                                   ("100-continue", 10_000, 413)):
        request = (f"POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                   f"application/json\r\nExpect: {expect}\r\nContent-Length: {length}\r\n"
                   f"\r\n").encode()
        got, headers, _ = await asyncio.to_thread(raw, client.port, request)
        assert got == status, (expect, got)
        protected(headers, f"Expect: {expect} -> {got}")
        seen.add(got)
    got, headers, _ = await asyncio.to_thread(raw, client.port, (
        b"GET /static/console.js HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: x\r\n"
        b"Connection: close\r\n\r\n"))
    assert got == 417
    protected(headers, "GET /static/console.js, Expect: x")
    assert {200, 304, 400, 403, 404, 405, 413, 417, 500} <= seen
