"""A client that goes away mid-request or mid-answer is no bug: no ERROR line,
no traceback, counted as CANCELLED, and what the request held freed at once
(no full garbage collection needed: the server runs with `gc.freeze()`)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
import socket
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server import app as app_module
from server.config import Config
from storage import engine as engine_module
from storage.limits import ResultLimits
from tests.helpers import ok, sql


class ServeLike(TestServer):
    """The app served as `cairn serve` serves it: a handler goes on when its
    client hangs up (aiohttp's test server cancels it instead)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return await super()._make_runner(**kwargs)


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config) -> Any:
    return await aiohttp_client(ServeLike(app_module.create_app(cairn_config)))


@pytest.fixture
def no_collection() -> Iterator[None]:
    """No automatic collection while the test runs: what is freed is freed by
    its reference count, as it must be in a server that froze its heap."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def cancelled_count(client: Any) -> float:
    text = await (await client.get("/metrics")).text()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("cairn_requests_total{") and 'protocol="http"' in line
               and 'status="CANCELLED"' in line)


async def until_counted(client: Any, before: float) -> None:
    for _ in range(200):
        if await cancelled_count(client) > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the request that was hung up on was never counted")


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad]
    assert 'status="INTERNAL"' not in caplog.text


HEAD = ("POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{}\r\n")


def _hang_up_mid_body(port: int, headers: str, part: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(HEAD.format(headers).encode() + part)


CUT = [
    ("Content-Length: 100\r\n", b'{"sql": "SEL'),
    ("Transfer-Encoding: chunked\r\n", b'c\r\n{"sql": "SEL\r\n'),
    ("Content-Encoding: gzip\r\nContent-Length: 5000\r\n",
     gzip.compress(b'{"sql": "SELECT 1", "namespace": "' + b"a" * 60 + b'"}' * 500)[:200]),
]


@pytest.mark.parametrize("headers, part", CUT, ids=["length", "chunked", "gzip"])
async def test_a_client_gone_mid_body_is_cancelled_not_internal(
        client: Any, caplog: pytest.LogCaptureFixture, headers: str, part: bytes) -> None:
    """It was 500 INTERNAL, an ERROR with a traceback ending `ConnectionResetError:
    Connection lost` (a gzip body: a second one, aiohttp's, for a 500 written
    to the closed connection), and `status="INTERNAL"` in the metrics."""
    caplog.set_level(logging.INFO)
    before = await cancelled_count(client)
    await asyncio.to_thread(_hang_up_mid_body, client.port, headers, part)
    await until_counted(client, before)
    await asyncio.sleep(0.2)
    assert_no_error_logged(caplog)
    assert "the client closed its connection before its body was complete" in caplog.text
    await ok(client, "SELECT 1")


def _hang_up_mid_answer(port: int, body: bytes, take: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(HEAD.format(f"Content-Length: {len(body)}\r\n").encode() + body)
        got = 0
        while got < take:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return got


async def test_a_client_gone_mid_answer_frees_the_answer(
        client: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        no_collection: None) -> None:
    """Reading 2 MB of a 10 MB answer then closing was an ERROR traceback
    (`ClientConnectionResetError: Cannot write to closing transport`), and the
    answer's bytes stayed in a reference cycle through the exception's frames
    until a full collection (~115 MB per aborted 40 MB answer)."""
    caplog.set_level(logging.INFO)
    answers: list[bytes] = []
    encode = app_module.answer_body

    async def kept(cairn: Any, body: dict[str, Any]) -> bytes:
        answers.append(await encode(cairn, body))
        return answers[-1]

    monkeypatch.setattr(app_module, "answer_body", kept)
    before = await cancelled_count(client)
    body = b'{"sql": "SELECT repeat(\'a\', 500000) AS x FROM range(20)"}'
    got = await asyncio.to_thread(_hang_up_mid_answer, client.port, body, 2 << 20)
    assert got >= 2 << 20
    await until_counted(client, before)
    assert len(answers) == 1
    data = answers.pop()
    held = sys.getrefcount(data) - 2  # beyond `data` and getrefcount's argument
    assert held == 0, [type(r) for r in gc.get_referrers(data)]  # no frame of the request
    assert len(data) > 9_000_000
    assert_no_error_logged(caplog)
    assert "bytes into its" in caplog.text


async def test_a_refused_write_frees_what_it_read(
        client: Any, monkeypatch: pytest.MonkeyPatch, no_collection: None) -> None:
    """A write refused past its bound (`UPDATE … SET v = v||v` over a 128 MiB
    cell: "a write reads at most 256 MiB…") left 0.4-1.2 GB held while idle:
    the error's traceback held `Engine.select`'s frame and its Arrow table,
    in a cycle through the executor's frame (`outcome` keeps the error)."""
    monkeypatch.setattr(engine_module, "WRITE_LIMITS", ResultLimits(max_bytes=1 << 20))
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (k BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, "INSERT INTO app.t VALUES (2, repeat('x', 700000))")
    tables: list[weakref.ref[pa.Table]] = []
    select = engine_module.Engine._select

    def watched(self: Any, *args: Any) -> pa.Table:
        table = select(self, *args)
        tables.append(weakref.ref(table))
        return table

    monkeypatch.setattr(engine_module.Engine, "_select", watched)
    status, body = await sql(client, "UPDATE app.t SET v = v || v WHERE k = 2")
    assert status == 400 and "a write reads at most" in body["error"]["message"], body
    assert tables and all(ref() is None for ref in tables), [ref() for ref in tables]

