"""`POST /api/sql`'s body: its shape checked without building what the API does
not take, and nothing a proxy in front might read otherwise (a key sent
twice, an encoding not applied, a body not in UTF-8); `Expect: 100-continue`
answered with the refusal before the upload."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from typing import Any

import pytest

from server import request_body
from server.app import create_app
from server.config import Config
from tests.helpers import ok


async def post(client: Any, payload: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/sql", data=payload,
                             headers={"Content-Type": "application/json", **headers})
    return resp.status, await resp.json()


def refused(status: int, body: dict[str, Any], *words: str) -> str:
    assert status == 400, (status, body)
    assert body["error"]["code"] == "INVALID_REQUEST", body
    message: str = body["error"]["message"]
    assert all(w in message for w in words), message
    return message


async def test_a_body_of_what_the_api_does_not_take_is_refused_unbuilt(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`{"sql": "SELECT 1", "x": [[], [], …]}`, 10 MB plain in 10 KB of gzip,
    was parsed whole by json.loads on the event loop: 0.7-3.6 s during which
    every client (HTTP and pgwire) waited. Its shape is refused now, before
    anything of it is built: json.loads never sees it."""
    seen: list[int] = []
    loads = json.loads

    def counted(text: Any, **kw: Any) -> Any:
        seen.append(len(text))
        return loads(text, **kw)

    monkeypatch.setattr(request_body.json, "loads", counted)
    plain = b'{"sql": "SELECT 1", "x": [' + b",".join([b"[]"] * 3_400_000) + b"]}"
    status, body = await post(client, gzip.compress(plain), **{"Content-Encoding": "gzip"})
    refused(status, body, "'x'", '"sql" and "namespace"')
    assert seen == []
    for payload in (b'{"sql": [' + b"1.5," * 500_000 + b'1], "namespace": "a"}',
                    b'{"sql": "SELECT 1", "namespace": {"a": [1, 2]}}'):
        refused(*await post(client, payload))
    assert seen == []
    await ok(client, "SELECT 1")


async def test_a_big_body_is_read_off_the_event_loop(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big body's strings are read on a statement thread, as a big
    statement is parsed on one; a small one stays on the loop."""
    threads: list[bool] = []
    parse = request_body.parse_sql_body

    def where(raw: bytes) -> tuple[str, str | None]:
        threads.append(threading.current_thread() is threading.main_thread())
        return parse(raw)

    monkeypatch.setattr(request_body, "parse_sql_body", where)
    big = "SELECT 1 AS one -- " + "x" * 100_000
    rows = (await ok(client, big))[0]["rows"]
    assert rows == [{"one": 1}]
    await ok(client, "SELECT 2")
    assert threads == [False, True]


async def test_a_key_sent_twice_is_refused(client: Any) -> None:
    """`{"sql": "SELECT 'harmless'", "sql": "SELECT 'second one ran'"}` ran the
    second: a proxy that read the first would have passed what it did not see
    (a header sent twice is refused the same way)."""
    for payload in (b'{"sql": "SELECT \'harmless\'", "sql": "SELECT \'second one ran\'"}',
                    b'{"sql": "SELECT 1", "s\\u0071l": "SELECT 2"}',
                    b'{"sql": "SELECT 1", "namespace": "a", "namespace": "b"}'):
        refused(*await post(client, payload), "more than once", "send it once")


async def test_a_body_not_in_utf8_is_not_json(client: Any) -> None:
    """UTF-16 and UTF-32 bodies were detected and run (json.loads guesses the
    encoding of bytes), though a body that is not UTF-8 is "not valid JSON"."""
    text = '{"sql": "SELECT \'not utf-8\' AS x"}'
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"):
        refused(*await post(client, text.encode(encoding)), "not valid JSON")
    assert (await ok(client, json.loads(text)["sql"]))[0]["rows"] == [{"x": "not utf-8"}]


async def test_the_shape_errors_name_the_problem(client: Any) -> None:
    cases = [
        (b'{"sql": "SELECT 1", "sqll": "x"}', "'sqll'"),
        (b'{"sql": 1}', 'needs "sql", a string'),
        (b'{"sql": null}', 'needs "sql", a string'),
        (b'{"namespace": "a"}', 'needs "sql", a string'),
        (b'{"sql": "SELECT 1", "namespace": []}', '"namespace" must be a string'),
        (b'[{"sql": "SELECT 1"}]', "must be a JSON object"),
        (b'"SELECT 1"', "must be a JSON object"),
        (b'{"sql": "SELECT 1"} {}', "not valid JSON"),
        (b'{"sql": "SELECT \\ud800"}', "not valid Unicode", "U+D800"),
        (b'{"sql": "SELECT \\\\ud800"', "not valid JSON"),
    ]
    for payload, *words in cases:
        refused(*await post(client, payload), *words)
    rows = (await ok(client, "SELECT '\\ud800' AS x, '\U0001f600' AS y"))[0]["rows"]
    assert rows == [{"x": "\\ud800", "y": "\U0001f600"}]
    pair = b'{"sql": "SELECT \'\\ud83d\\ude00\' AS y", "namespace": null}'
    status, body = await post(client, pair)
    assert status == 200 and body["results"][0]["rows"] == [{"y": "\U0001f600"}], body


def _exchange(port: int, head: bytes, body: bytes = b"", first_only: bool = False) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            if first_only and b"\r\n\r\n" in got:
                break
            if _complete(got):  # a whole answer: no wait for the socket's timeout
                break
        return got


def _complete(got: bytes) -> bool:
    """Whether `got` holds a whole answer with a Content-Length (not a 100)."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep or head.startswith(b"HTTP/1.1 100"):
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


@pytest.mark.parametrize("encoding",
                         ["x-gzip", "gzip, gzip", "gzip,deflate", "compress", "GZIP;q=1"])
async def test_an_encoding_not_applied_is_refused(client: Any, encoding: str) -> None:
    """`Content-Encoding: x-gzip` (or `gzip, gzip`) was not applied: a plain
    body so labelled ran, a gzip one was "not valid JSON"."""
    plain = b'{"sql": "SELECT 1"}'
    for payload in (plain, gzip.compress(plain)):
        message = refused(*await post(client, payload, **{"Content-Encoding": encoding}),
                          "Content-Encoding", "not applied")
        assert repr(encoding) in message


async def test_a_transfer_encoding_not_applied_is_refused(client: Any) -> None:
    """`Transfer-Encoding: gzip, chunked` took the chunks and ignored the gzip."""
    body = gzip.compress(b'{"sql": "SELECT 1"}')
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = (b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n")
    answer = await asyncio.to_thread(_exchange, client.port, head, chunked)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"Transfer-Encoding 'gzip, chunked' is not applied" in answer, answer
    plain = b'{"sql": "SELECT 1 AS one"}'
    head = head.replace(b"gzip, chunked", b"chunked")
    answer = await asyncio.to_thread(
        _exchange, client.port, head, f"{len(plain):x}\r\n".encode() + plain + b"\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b'"one":1' in answer, answer[:300]


async def test_expect_continue_is_refused_before_the_upload(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """`Expect: 100-continue` with a body over `max_request_bytes` got `100
    Continue`, then the 413 only after the upload; in token mode `100 Continue`
    came before the 401. The refusal comes first now, the body never asked for."""
    cairn_config.server.max_request_bytes = 1000
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-root", "user": "root", "role": "admin"}]
    client = await aiohttp_client(create_app(cairn_config))

    def head(length: int, token: str | None) -> bytes:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        return (f"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"{auth}Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n").encode()

    for length, token, status, code in ((5000, "t-root", b"413", b"REQUEST_TOO_LARGE"),
                                        (20, None, b"401", b"UNAUTHENTICATED"),
                                        (20, "wrong", b"401", b"UNAUTHENTICATED")):
        answer = await asyncio.to_thread(_exchange, client.port, head(length, token))
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
        assert b"100 Continue" not in answer and code in answer, answer
    body = b'{"sql": "SELECT 1 AS one"}'
    answer = await asyncio.to_thread(_exchange, client.port, head(len(body), "t-root"),
                                     first_only=True)
    assert answer.startswith(b"HTTP/1.1 100 Continue"), answer
    resp = await client.post("/api/sql", data=body, expect100=True, headers={
        "Content-Type": "application/json", "Authorization": "Bearer t-root"})
    assert resp.status == 200 and (await resp.json())["results"][0]["rows"] == [{"one": 1}]
