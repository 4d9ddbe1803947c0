"""`POST /api/sql`'s body: its shape checked without building what the API does
not take, and nothing a proxy in front might read otherwise (a key sent
twice, a body not in UTF-8)."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

import pytest

from server import request_body
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

