"""The HTTP API end to end (in process): request and result shapes, one test per
error code, multi-statement requests, malformed input, auth."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import socket
import zlib
from typing import Any

import pytest
from aiohttp.http_exceptions import LineTooLong
from multidict import CIMultiDict

from server.app import CAIRN, create_app
from server.config import Config
from server.logs import MalformedRequests
from tests.helpers import ok, sql

ERROR_KEYS = {"code", "message", "statement", "line", "column"}


def assert_error(status: int, body: dict[str, Any], code: str, http: int) -> dict[str, Any]:
    assert status == http, body
    assert body["status"] == "error"
    assert isinstance(body["results"], list)
    assert isinstance(body["took"], int | float)
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_success_shape(client: Any) -> None:
    status, body = await sql(
        client, "CREATE NAMESPACE app; SELECT namespace FROM system.namespaces"
    )
    assert status == 200
    assert set(body) == {"status", "results", "took"}
    assert body["status"] == "success" and body["took"] >= 0
    create, select = body["results"]
    assert create["rows"] == [] and "app" in create["message"]
    assert select["columns"] == ["namespace"]
    assert select["schema"] == [{"name": "namespace", "type": "TEXT"}]
    assert select["rows"] == [{"namespace": "app"}]
    assert select["row_count"] == 1 and select["message"] is None


async def test_health(client: Any) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_invalid_request_cases(client: Any) -> None:
    cases = [
        (b"not json", "application/json"),
        (b'["sql"]', "application/json"),
        (b"{}", "application/json"),
        (b'{"sql": 42}', "application/json"),
        (b'{"sql": ""}', "application/json"),
        (b'{"sql": "   "}', "application/json"),
        (b'{"sql": "-- only a comment"}', "application/json"),
        (b'{"sql": ";;"}', "application/json"),
        (b'{"sql": "SHOW NAMESPACES", "namespace": 3}', "application/json"),
        (b'{"sql": "SHOW NAMESPACES"}', "text/plain"),
        (os.urandom(1 << 20), "application/json"),
        (b"\xff\xfe\x00", "application/json"),
    ]
    for payload, ctype in cases:
        resp = await client.post("/api/sql", data=payload, headers={"Content-Type": ctype})
        body = await resp.json()
        assert_error(resp.status, body, "INVALID_REQUEST", 400)
    # The server keeps serving.
    await ok(client, "SHOW NAMESPACES")


async def test_a_body_that_does_not_decode_is_invalid_request(client: Any) -> None:
    """`Content-Encoding: gzip` on bytes that are not gzip was a 500 (aiohttp's
    RequestPayloadError escaped the handler)."""
    plain = b'{"sql": "SELECT 1 AS one"}'
    for encoding, payload in (("gzip", plain), ("gzip", b"\x1f\x8b" + plain),
                              ("deflate", b"\x00" * 40)):
        resp = await client.post("/api/sql", data=payload, headers={
            "Content-Type": "application/json", "Content-Encoding": encoding})
        error = assert_error(resp.status, await resp.json(), "INVALID_REQUEST", 400)
        assert f"Content-Encoding ({encoding})" in error["message"], error
        assert resp.headers.get("Connection") == "close"  # where the body ends is unknown
    resp = await client.post("/api/sql", data=gzip.compress(plain), headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert resp.status == 200 and (await resp.json())["results"][0]["rows"] == [{"one": 1}]


def test_a_malformed_request_is_one_warning_line() -> None:
    """aiohttp logs a malformed request as an ERROR with a traceback whose
    message quotes the client's bytes (here a token): one WARNING instead."""
    bad = LineTooLong(b"Authorization: Bearer secret-token-" + b"x" * 9000, 8190)
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                               "Error handling request from %s", ("10.0.0.9",),
                               (type(bad), bad, None))
    assert MalformedRequests().filter(record)
    assert record.levelname == "WARNING" and record.exc_info is None
    line = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING malformed HTTP request from 10.0.0.9: LineTooLong (400)"
    other = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "boom", (),
                              (ValueError, ValueError("x"), None))
    assert MalformedRequests().filter(other) and other.levelname == "ERROR" and other.exc_info


async def test_parse_error_points_at_the_token(client: Any) -> None:
    status, body = await sql(client, "SHOW NAMESPACES;\nCREATE NAMESPAC app")
    err = assert_error(status, body, "PARSE_ERROR", 400)
    assert (err["statement"], err["line"], err["column"]) == (2, 2, 8)
    # The statement before the bad one ran and kept its result.
    assert len(body["results"]) == 1


async def test_statements_before_a_failure_keep_their_effect(client: Any) -> None:
    status, body = await sql(
        client, "CREATE NAMESPACE a1; CREATE NAMESPACE a1; CREATE NAMESPACE a2"
    )
    err = assert_error(status, body, "ALREADY_EXISTS", 409)
    assert (err["statement"], err["line"], err["column"]) == (2, 1, 22)
    assert len(body["results"]) == 1
    rows = (await ok(client, "SELECT namespace FROM system.namespaces ORDER BY 1"))[0]["rows"]
    assert [r["namespace"] for r in rows] == ["a1"]  # a2 never ran


async def test_semicolons_in_strings_and_comments_do_not_split(client: Any) -> None:
    results = await ok(
        client,
        "SELECT 'a;b' AS s /* ; */; -- trailing; comment\nSELECT 2 AS n",
    )
    assert results[0]["rows"] == [{"s": "a;b"}]
    assert results[1]["rows"] == [{"n": 2}]


async def test_invalid_argument(client: Any) -> None:
    status, body = await sql(client, "CREATE NAMESPACE system")
    err = assert_error(status, body, "INVALID_ARGUMENT", 400)
    assert "system" in err["message"] and err["statement"] == 1


async def test_not_found(client: Any) -> None:
    status, body = await sql(client, "DROP NAMESPACE ghost")
    err = assert_error(status, body, "NOT_FOUND", 404)
    assert err["message"] == "Namespace 'ghost' does not exist"


async def test_already_exists(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app")
    status, body = await sql(client, "CREATE NAMESPACE app")
    assert_error(status, body, "ALREADY_EXISTS", 409)
    await ok(client, "CREATE NAMESPACE IF NOT EXISTS app")


async def test_permission_denied_for_file_access(client: Any) -> None:
    status, body = await sql(client, "SELECT * FROM read_csv('/etc/passwd')")
    assert_error(status, body, "PERMISSION_DENIED", 403)


async def test_kill_unknown_job_is_not_found(client: Any) -> None:
    status, body = await sql(client, "KILL JOB 'job-nope'")
    assert_error(status, body, "NOT_FOUND", 404)
    for text in ("KILL JOB '{}'", "SHOW JOB '{}'", "PAUSE JOB '{}'"):  # a 1 MB id was echoed
        status, body = await sql(client, text.format("j" * 1_000_000))
        error = assert_error(status, body, "NOT_FOUND", 404)
        assert len(error["message"]) < 300, text


async def test_request_too_large(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.server.max_request_bytes = 4096
    client = await aiohttp_client(create_app(cairn_config))
    status, body = await sql(client, "SELECT '" + "x" * 10000 + "'")
    assert_error(status, body, "REQUEST_TOO_LARGE", 413)
    await ok(client, "SHOW NAMESPACES")


async def test_statement_without_a_handler_is_invalid_argument() -> None:
    """Statements whose handlers come later answer INVALID_ARGUMENT, not a 500."""
    from dataclasses import dataclass

    from catalog.errors import InvalidArgument
    from server.executor import run_statement
    from server.state import Session
    from sqlgrammar import ast

    @dataclass(frozen=True)
    class Future(ast.Statement):
        pass

    with pytest.raises(InvalidArgument, match="not implemented yet"):
        await run_statement(None, Session(user_id=None), Future())  # type: ignore[arg-type]


@pytest.fixture
async def token_client(aiohttp_client: Any, cairn_config: Config) -> Any:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [
        {"token": "root-secret", "user": "root", "role": "admin"},
        {"token": "alice-secret", "user": "alice", "role": "user"},
    ]
    return await aiohttp_client(create_app(cairn_config))


async def test_token_auth(token_client: Any) -> None:
    status, body = await sql(token_client, "SHOW NAMESPACES")
    assert_error(status, body, "UNAUTHENTICATED", 401)
    status, body = await sql(token_client, "SHOW NAMESPACES", token="wrong")
    assert_error(status, body, "UNAUTHENTICATED", 401)
    await ok(token_client, "CREATE NAMESPACE app", token="root-secret")
    status, body = await sql(token_client, "CREATE NAMESPACE b", token="alice-secret")
    err = assert_error(status, body, "PERMISSION_DENIED", 403)
    assert "admin" in err["message"]
    status, body = await sql(token_client, "KILL JOB 'job-x'", token="alice-secret")
    assert_error(status, body, "PERMISSION_DENIED", 403)
    # A plain user may read.
    results = await ok(token_client, "SHOW NAMESPACES", token="alice-secret")
    assert [r["namespace"] for r in results[0]["rows"]] == ["app"]


async def test_a_token_is_the_header_without_unicode_spaces_taken_off(
        token_client: Any) -> None:
    """str.strip() took Unicode spaces off the header's token: a role-user's token
    "root-secret<U+3000>" was root's over HTTP. Only HTTP's own blanks (spaces and
    tabs, RFC 9110) around it are dropped now."""
    for token in ("root-secret\u3000", "\u3000root-secret", "root-secret\u00a0",
                  "root-secret\u2003", "root-secret\u2028", "\ufeffroot-secret"):
        resp = await token_client.post(
            "/api/sql", json={"sql": "SELECT current_user AS who"},
            headers={"Authorization": f"Bearer {token}"})  # sent as UTF-8
        body = await resp.json()
        assert resp.status in (400, 401), (token, body)
        assert body["error"]["code"] in ("UNAUTHENTICATED", "INVALID_REQUEST"), body
    for header in ("Bearer \troot-secret \t", "bearer  root-secret"):
        resp = await token_client.post("/api/sql", json={"sql": "SELECT current_user AS who"},
                                       headers={"Authorization": header})
        assert (await resp.json())["results"][0]["rows"] == [{"who": "root"}], header


async def test_none_auth_user_header(client: Any) -> None:
    resp = await client.post("/api/sql", json={"sql": "SHOW NAMESPACES"},
                             headers={"X-User-Id": "bad user!"})
    assert_error(resp.status, await resp.json(), "INVALID_REQUEST", 400)


def _send_raw(port: int, head: bytes, body: bytes) -> bytes:
    """Send a request whole (or until the server closes), then read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        # OSError: the server answered and closed while the body was on its way
        with contextlib.suppress(OSError):
            s.sendall(head + body)
        try:
            return s.recv(4096)
        except OSError:
            return b""


@pytest.mark.parametrize("method, path", [("POST", "/api/sql"), ("GET", "/health"),
                                          ("GET", "/nope")])
async def test_an_unread_compressed_body_is_not_decoded(
        aiohttp_client: Any, cairn_config: Config, method: str, path: str) -> None:
    """A gzip body the answer leaves unread (here a 401: no token; a route that
    takes no body; a 404) was decoded whole by aiohttp after the answer, in a
    loop that does not yield: 2 MB of gzip (2 GiB of zeros) held the event loop
    for seconds, every other client waiting. Now the connection is closed."""
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-root", "user": "root", "role": "admin"}]
    client = await aiohttp_client(create_app(cairn_config))
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    one = member.compress(b"0" * (64 << 20)) + member.flush()
    bomb = one * 32  # gzip members back to back: one body of 2 GiB decoded
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    longest = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal longest
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            longest = max(longest, loop.time() - before)

    ticker = asyncio.create_task(tick())
    answer = await asyncio.to_thread(_send_raw, client.port, head, bomb)
    await asyncio.sleep(0.5)  # what the server does with the rest comes after the answer
    done.set()
    await ticker
    assert answer.split(b" ")[1] in (b"401", b"404", b"200"), answer[:200]
    assert longest < 0.5, f"the event loop was held {longest:.2f} s"
    await client.get("/health")


async def test_a_cross_origin_request_is_refused(client: Any) -> None:
    """A browser names the page's origin; only the server's own may send statements
    (the CSRF test with a real browser is tests/console/test_web.py)."""
    host = f"{client.host}:{client.port}"
    for origin in ("http://evil.example", "null", f"http://{host}.evil.example"):
        resp = await client.post("/api/sql", json={"sql": "CREATE NAMESPACE csrf"},
                                 headers={"Origin": origin})
        error = assert_error(resp.status, await resp.json(), "PERMISSION_DENIED", 403)
        assert "cross-origin" in error["message"]
    for ctype in ("text/plain; x=+json", "text/plain; charset=application/json"):
        resp = await client.post("/api/sql", data=b'{"sql": "CREATE NAMESPACE csrf"}',
                                 headers={"Content-Type": ctype})
        assert_error(resp.status, await resp.json(), "INVALID_REQUEST", 400)
    resp = await client.post("/api/sql", json={"sql": "SHOW NAMESPACES"},
                             headers={"Origin": f"http://{host}"})
    assert resp.status == 200 and (await resp.json())["results"][0]["rows"] == []
    resp = await client.post("/api/sql", data=b'{"sql": "SELECT 1 AS a"}',
                             headers={"Content-Type": "application/vnd.x+json; charset=utf-8"})
    assert resp.status == 200


async def test_a_page_of_a_rebound_name_is_refused(client: Any) -> None:
    """DNS rebinding: an attacker's name re-pointed at this server makes its page
    same-origin (Origin and Host are both that name), and the Origin check let
    it run statements (as admin in mode none; seen in a real browser). Only the
    names the server is reached by are taken: localhost, an IP address, its
    configured host and [server] allowed_hosts."""
    port = client.port
    for name in ("evil.test", "attacker.example.com", "localhost.evil.test"):
        resp = await client.post("/api/sql", json={"sql": "CREATE NAMESPACE rebound"},
                                 headers={"Host": f"{name}:{port}",
                                          "Origin": f"http://{name}:{port}"})
        error = assert_error(resp.status, await resp.json(), "PERMISSION_DENIED", 403)
        assert "allowed_hosts" in error["message"]
    for name in ("localhost", "127.0.0.1", "[::1]", "10.1.2.3"):
        resp = await client.post("/api/sql", json={"sql": "SELECT 1 AS a"},
                                 headers={"Host": f"{name}:{port}",
                                          "Origin": f"http://{name}:{port}"})
        assert resp.status == 200, (name, await resp.text())
    client.server.app[CAIRN].config.server.allowed_hosts = ["Cairn.Example.Org"]
    resp = await client.post("/api/sql", json={"sql": "SELECT 1 AS a"},
                             headers={"Host": f"cairn.example.org:{port}",
                                      "Origin": f"http://cairn.example.org:{port}"})
    assert resp.status == 200
    resp = await client.post("/api/sql", json={"sql": "SHOW NAMESPACES"},
                             headers={"Host": "evil.test"})  # no Origin: not a browser's page
    assert resp.status == 200 and (await resp.json())["results"][0]["rows"] == []


async def test_a_rebound_name_reads_neither_metrics_nor_health(client: Any) -> None:
    """DNS rebinding, read side: a page's same-origin GET carries no Origin, so
    the check above (POST /api/sql only) let a page of a name re-pointed at this
    server read GET /metrics in mode none (namespace names, archive targets) and
    GET /health. In mode none their Host must be one of the server's names,
    Origin or not; a foreign Origin is refused as for /api/sql. The console's
    page and files, and the fixed OpenAPI document, hold no data and still load."""
    port = client.port
    await ok(client, "CREATE NAMESPACE payroll_secret")
    for path in ("/metrics", "/health"):
        for name in ("evil.test", "localhost.evil.test", "127.0.0.1.evil.test"):
            resp = await client.get(path, headers={"Host": f"{name}:{port}"})
            error = assert_error(resp.status, await resp.json(), "PERMISSION_DENIED", 403)
            assert "allowed_hosts" in error["message"] and "payroll" not in error["message"]
            resp = await client.head(path, headers={"Host": f"{name}:{port}"})
            assert resp.status == 403, (path, name)
        resp = await client.get(path, headers={"Host": f"localhost:{port}",
                                               "Origin": f"http://evil.test:{port}"})
        assert_error(resp.status, await resp.json(), "PERMISSION_DENIED", 403)
        for name in ("localhost", "127.0.0.1", "[::1]", "10.1.2.3"):
            resp = await client.get(path, headers={"Host": f"{name}:{port}"})
            assert resp.status == 200, (path, name, await resp.text())
    metrics_text = await (await client.get("/metrics")).text()  # the test client: 127.0.0.1
    assert "payroll_secret" in metrics_text
    client.server.app[CAIRN].config.server.allowed_hosts = ["Cairn.Example.Org"]
    resp = await client.get("/metrics", headers={"Host": f"cairn.example.org:{port}"})
    assert resp.status == 200
    for path in ("/", "/static/console.js", "/api/openapi.json"):
        resp = await client.get(path, headers={"Host": f"evil.test:{port}"})
        assert resp.status == 200, path


async def test_in_token_mode_metrics_may_be_scraped_by_any_name(token_client: Any) -> None:
    """/metrics needs an admin token there, which a rebound page has not: a
    scraper may reach it by any name, as before."""
    port = token_client.port
    resp = await token_client.get("/metrics", headers={"Host": f"evil.test:{port}"})
    assert resp.status == 401
    resp = await token_client.get("/metrics", headers={"Host": f"evil.test:{port}",
                                                       "Authorization": "Bearer root-secret"})
    assert resp.status == 200


async def test_an_identity_header_sent_twice_is_refused(token_client: Any) -> None:
    """Two Authorization headers (alice's, then root's) ran as the first; a proxy
    in front that checked the other would disagree on who is calling."""
    for first, second in (("alice-secret", "root-secret"), ("root-secret", "alice-secret")):
        headers = CIMultiDict([("Authorization", f"Bearer {first}"),
                               ("Authorization", f"Bearer {second}")])
        resp = await token_client.post("/api/sql", json={"sql": "SELECT 1 AS one"},
                                       headers=headers)
        error = assert_error(resp.status, await resp.json(), "INVALID_REQUEST", 400)
        assert "Authorization is sent 2 times" in error["message"]


async def test_x_user_id_sent_twice_is_refused(client: Any) -> None:
    headers = CIMultiDict([("X-User-Id", "alice"), ("X-User-Id", "bob")])
    resp = await client.post("/api/sql", json={"sql": "SELECT 1 AS one"}, headers=headers)
    assert_error(resp.status, await resp.json(), "INVALID_REQUEST", 400)
