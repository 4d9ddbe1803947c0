"""A lying S3 endpoint for tests: an HTTP proxy in front of the moto server
(s3server.py) that passes every request on, except those a rule names:

- `drip`: the true answer, one byte every `seconds` (fast enough that the
  SDK's low-speed limit never trips, so the read waits as long as it drips);
- `list_loop`: a listing that never ends: 1000 made-up keys a page, always
  truncated, always the same continuation token, a page every LOOP_PAGE_SECONDS
  at most (as a store's round trip: unpaced, the loop of pages took the CPU
  the server's clean-up after a KILL needed, in the same process);
- `redirect`: 307 to `location` (another host or port), which the SDK follows.

`release()` ends every drip and loop at once (a dripped answer is cut off, a
looping listing ends), so a read pyarrow still runs finishes: pyarrow's own
exit waits on every S3 request running in the process."""

from __future__ import annotations

import http.client
import http.server
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .s3server import S3Server

LOOP_PAGE_SECONDS = 0.05


class Liar:
    def __init__(self, upstream: S3Server) -> None:
        self.upstream = upstream.port
        self.rules: list[tuple[str, str, str, float]] = []  # method, regex, act, seconds
        self.location = ""
        self.released = threading.Event()
        self.hits: dict[str, int] = {}
        self.skips: dict[tuple[str, str], int] = {}  # requests a rule lets pass first
        self.guard = threading.Lock()
        liar = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # TCP_NODELAY, as s3liar.py says why

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                liar._serve(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def lie(self, method: str, pattern: str, act: str, seconds: float = 0.0,
            location: str = "", skip: int = 0) -> None:
        """`act` for requests of `method` that `pattern` finds, but the first `skip`."""
        self.released.clear()
        self.location = location
        self.hits.clear()
        self.skips[(method, pattern)] = skip
        self.rules.append((method, pattern, act, seconds))

    def release(self) -> None:
        self.rules.clear()
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, h: http.server.BaseHTTPRequestHandler) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else None
        line = f"{h.command} {h.path}"
        act, seconds = next(((a, s) for m, p, a, s in list(self.rules)
                             if m == h.command and re.search(p, line)
                             and not self._skipped(m, p)), ("pass", 0.0))
        self.hits[act] = self.hits.get(act, 0) + 1
        if act == "redirect":
            h.send_response(307)
            h.send_header("Location", self.location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        path = h.path
        if act == "list_loop":
            path = re.sub(r"continuation-token=[^&]*&?", "", h.path)
            self.released.wait(LOOP_PAGE_SECONDS)
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
        conn.request(h.command, path, body=body,
                     headers={k: v for k, v in h.headers.items() if k.lower() != "connection"})
        answer = conn.getresponse()
        data = answer.read()
        headers = [(k, v) for k, v in answer.getheaders()
                   if k.lower() not in ("transfer-encoding", "connection", "content-length")]
        length = int(answer.getheader("Content-Length") or len(data))
        conn.close()
        if act == "list_loop" and answer.status == 200:
            data = self._page(h.path) if not self.released.is_set() else data
            length = len(data)
        h.send_response(answer.status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(length))
        h.end_headers()
        if h.command == "HEAD":
            return
        if act != "drip":
            h.wfile.write(data)
            return
        for i in range(len(data)):
            if self.released.wait(seconds):
                h.close_connection = True  # cut off: the read ends with an error
                return
            h.wfile.write(data[i:i + 1])
            h.wfile.flush()

    def _skipped(self, method: str, pattern: str) -> bool:
        with self.guard:
            left = self.skips.get((method, pattern), 0)
            self.skips[(method, pattern)] = left - 1
            return left > 0

    @staticmethod
    def _page(path: str) -> bytes:
        prefix = parse_qs(urlsplit(path).query).get("prefix", [""])[0]
        keys = "".join(
            f"<Contents><Key>{prefix}junk-{i:06d}</Key><Size>1</Size>"
            "<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"e\"</ETag>"
            "<StorageClass>STANDARD</StorageClass></Contents>" for i in range(1000))
        return (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
            'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
            f"<Prefix>{prefix}</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys>"
            "<IsTruncated>true</IsTruncated><NextContinuationToken>LOOP</NextContinuationToken>"
            f"{keys}</ListBucketResult>").encode()


def lying(upstream: S3Server) -> Iterator[Liar]:
    """A liar in front of `upstream` for the duration of the generator (a fixture body)."""
    liar = Liar(upstream)
    try:
        yield liar
    finally:
        liar.close()
