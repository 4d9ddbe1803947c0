"""`cairn sql` against a server (or proxy) that answers what it should not: the
console prints one `ERROR …` line and exits non-zero, and its token never
leaves the origin it was given."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading

import pytest

from console.client import parse_reply
from tests.console.conftest import cairn_sql
from tests.console.fakeserver import fake_server

TOKEN = "s3cret-admin-token"
SUCCESS = json.dumps({"status": "success", "results": [
    {"columns": ["n"], "schema": [{"name": "n", "type": "INTEGER"}], "rows": [{"n": 42}]}]}
).encode()


def test_a_redirect_is_an_error_and_the_token_stays_home() -> None:
    with fake_server(lambda h: (200, {}, SUCCESS)) as other:
        for status in (302, 307):
            location = other.url + "/steal"
            with fake_server(lambda h, s=status, loc=location: (s, {"Location": loc}, b"")) as srv:
                run = cairn_sql(srv.url, "--user", "alice", "-c", "DELETE FROM app.t WHERE id = 1",
                                env={"CAIRN_TOKEN": TOKEN})
                assert run.returncode == 1, (status, run.stdout, run.stderr)
                assert run.stdout == ""
                assert run.stderr.splitlines() == [
                    f"ERROR REDIRECT: {srv.url} answered {status} redirecting to {location}; "
                    "not followed (point --url at the server itself)"]
                assert [(m, p) for m, p, _ in srv.seen] == [("POST", "/api/sql")]
        assert other.seen == []  # neither the token nor X-User-Id went to the other host


SRV = "{srv}"  # replaced by the fake server's URL


@pytest.mark.parametrize("env, args, says", [
    ({"CAIRN_TOKEN": "s3cretTOKEN42\r"}, [], "the token"),
    ({}, ["--token", "s3cretTOKEN42\u20ac"], "the token"),
    ({}, ["--user", "al\u20ac"], "--user"),
    ({}, ["--url", "127.0.0.1:1"], "--url 127.0.0.1:1 "),
    ({}, ["--url", "http://[::1"], "--url http://[::1 "),
    ({}, ["--url", SRV + "/\x7f"], "--url "),
])
def test_a_token_user_or_url_that_cannot_be_sent_is_one_error_line_without_the_secret(
        env: dict[str, str], args: list[str], says: str) -> None:
    with fake_server(lambda h: (200, {}, SUCCESS)) as srv:
        args = [a.replace(SRV, srv.url) for a in args]
        run = cairn_sql(srv.url, *args, "-c", "SELECT 1", env={"CAIRN_TOKEN": "", **env})
        assert run.returncode == 1, (args, run.stderr)
        assert run.stdout == ""
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ERROR INVALID_ARGUMENT: {says}"), (
            args, run.stderr)
        assert "s3cretTOKEN42" not in run.stderr
        assert srv.seen == []


@pytest.mark.parametrize("answer", ["silent", "drip"])
def test_timeout_ends_a_request_the_server_never_finishes(answer: str) -> None:
    release = threading.Event()

    def silent(h: http.server.BaseHTTPRequestHandler) -> None:
        release.wait(120)

    def drip(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000000")
        h.end_headers()
        with contextlib.suppress(OSError):
            while not release.wait(0.2):  # a byte every 0.2 s: 1 MB takes days
                h.wfile.write(b" ")
                h.wfile.flush()

    try:
        with fake_server(silent if answer == "silent" else drip) as srv:
            # Without the timeout this never returns: cairn_sql raises TimeoutExpired at 60 s.
            run = cairn_sql(srv.url, "--timeout", "1", "-c", "SELECT 1")
            assert run.returncode == 1, run.stderr
            assert run.stderr.splitlines() == [
                f"ERROR TIMEOUT: {srv.url} did not answer within 1 s (--timeout); "
                "the server may still run the statement"]
    finally:
        release.set()


def test_timeout_must_be_a_number_of_seconds() -> None:
    run = cairn_sql("http://127.0.0.1:1", "--timeout", "soon", "-c", "SELECT 1")
    assert run.returncode == 2
    assert "--timeout: not a number of seconds: 'soon'" in run.stderr



WRONG_SHAPES = {
    "/rows": b'{"status":"success","results":[{"columns":["x"],"rows":[1]}]}',
    "/results": b'{"status":"success","results":5}',
    "/schema": b'{"status":"success","results":[{"columns":["x"],"schema":[1],"rows":[{"x":1}]}]}',
    "/columns": b'{"status":"error","results":[{"columns":3}],"error":{"code":"X"}}',
    "/deep": b'{"status":"success","results":[{"columns":["x"],"rows":[{"x":'
             + b"[" * 100_000 + b"]" * 100_000 + b"}]}]}",
}


def test_an_answer_of_the_wrong_shape_is_invalid_response() -> None:
    for path, body in WRONG_SHAPES.items():
        reply = parse_reply(body, 1.0)
        assert reply.error is not None and reply.error.code == "INVALID_RESPONSE", path
        assert reply.results == []


def test_the_console_prints_a_wrong_shape_as_one_error_line_not_a_traceback() -> None:
    def answer(h: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, WRONG_SHAPES[h.path.removesuffix("/api/sql")]

    with fake_server(answer) as srv:
        for path, fmt in (("/rows", "table"), ("/deep", "csv")):
            run = cairn_sql(srv.url + path, "--format", fmt, "-c", "SELECT 1")
            assert run.returncode == 1, (path, fmt, run.stderr)
            lines = run.stderr.splitlines()
            assert len(lines) == 1, (path, fmt, run.stderr)
            assert lines[0].startswith("ERROR INVALID_RESPONSE: server sent "), (path, fmt)
