"""An S3 target that cannot be reached, or that refuses the credentials, is
neither a damaged backup nor a bad statement: UNAVAILABLE (503) and
PERMISSION_DENIED (403) say which, for every statement that reads or writes
the target, and the failed job says the same. A real moto server holds the
backup; the outage is a port nobody listens on, the refusal a real HTTP server
answering S3's `AccessDenied` to every request."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import ok, sql
from tests.storage_backup.s3server import S3Server, running


class _Denies(http.server.BaseHTTPRequestHandler):
    """What S3 answers a key it does not accept, to every request."""

    disable_nagle_algorithm = True  # TCP_NODELAY (tests/storage_backup/s3liar.py)

    def _deny(self) -> None:
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                b"<Message>Access Denied</Message></Error>")
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _deny

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture(scope="module")
def denying() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Denies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config, s3: S3Server, denying: int) -> Any:
    bucket = s3.new_bucket()
    good = s3.target(bucket, "cairn")
    cairn_config.backup.targets = {
        "good": good,
        "down": {**good, "endpoint": f"http://127.0.0.1:{_closed_port()}"},
        "denied": {**good, "endpoint": f"http://127.0.0.1:{denying}"},
    }
    return await aiohttp_client(create_app(cairn_config))


STATEMENTS = [
    "BACKUP DATABASE app TO '{t}'",
    "SHOW BACKUPS IN '{t}'",
    "SHOW BACKUP '{b}' IN '{t}'",
    "VERIFY BACKUP '{b}' IN '{t}'",
    "RESTORE DATABASE app FROM '{t}' AS copy",
    "DROP BACKUP '{b}' IN '{t}'",
]


@pytest.mark.parametrize(("target", "status", "code", "words"), [
    ("down", 503, "UNAVAILABLE", "cannot be reached"),
    ("denied", 403, "PERMISSION_DENIED", "refuses access"),
])
async def test_an_unreachable_or_refusing_target_says_so(
    client: Any, target: str, status: int, code: str, words: str,
) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    backup_id = (await ok(client, "BACKUP DATABASE app TO 'good'"))[0]["rows"][0]["backup_id"]
    for text in STATEMENTS:
        got, body = await sql(client, text.format(t=target, b=backup_id))
        assert (got, body["error"]["code"]) == (status, code), (text, body)
        assert words in body["error"]["message"], body
    jobs = (await ok(client, "SELECT job_type, error_message FROM system.jobs "
                             "WHERE status = 'failed' ORDER BY created_at"))[0]["rows"]
    assert {j["job_type"] for j in jobs} >= {"backup", "verify", "drop_backup"}, jobs
    assert all(words in j["error_message"] for j in jobs), jobs
    # the backup itself is whole: the same statements against the reachable target
    verify = (await ok(client, f"VERIFY BACKUP '{backup_id}' IN 'good'"))[0]["rows"][0]
    assert verify["is_valid"] is True
