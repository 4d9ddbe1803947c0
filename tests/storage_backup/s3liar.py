"""An HTTP proxy in front of the real S3 server of s3server.py that lies the
way broken or hostile object stores have been seen to: a key LISTed but "not
found" when read, a write acknowledged but not stored (or stored cut short,
or changed), a LIST naming a key that is not UTF-8. Each lie is a `Rule`;
every request no rule takes passes to the real server unchanged."""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Rule:
    """`act` for requests of `method` whose "METHOD /path?query" `pattern` finds:
    'missing' (404 NoSuchKey), 'slow' (503 SlowDown, the store's "not now"), 'busy'
    (429 TooManyRequests, how some stores say it), 'denied' (403 AccessDenied: not
    retried by the client, a target that cannot be read now at once),
    'drop' (200, nothing stored), 'cut' (half the
    body stored), 'flip' (one bit of the body changed), 'inject' (the LIST
    answer names `keys` too, raw bytes appended to its prefix), 'hold' (passed
    on after `Liar.hold` seconds; `Liar.most_held` counts how many reading more
    than `Liar.hold_over` bytes, by their Range, were held at once), 'small'
    (a LIST answer whose every size says 100 bytes), 'ghost' (a HEAD answered
    200 with `size` bytes, whatever the store holds; `size` 0: the bytes last
    PUT at the path, its parts' together); the first `skip`
    requests it finds pass unchanged."""

    method: str
    pattern: str
    act: str
    keys: list[bytes] = field(default_factory=list)
    skip: int = 0
    size: int = 0


_MISSING = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
            b"<Message>The specified key does not exist.</Message></Error>")
_BUSY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>TooManyRequests</Code>'
         b"<Message>Please reduce your request rate.</Message></Error>")
_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
           b"<Message>Access Denied</Message></Error>")
_SLOW = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
         b"<Message>Please reduce your request rate.</Message></Error>")


class Liar:
    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.seen: list[str] = []  # every request's "METHOD /path?query"
        self.lock = threading.Lock()
        self.hold = 0.2
        self.hold_over = 0
        self.held = 0
        self.most_held = 0
        self.put: dict[str, int] = {}  # path -> the bytes last PUT there (its parts')
        liar = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: the headers and the body are two writes, and with
            # Nagle's algorithm the body waited for the client's delayed ACK of
            # the headers: 52 ms a HEAD + GET through this proxy, 8 ms without it.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                liar.handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _rule(self, method: str, line: str) -> Rule | None:
        with self.lock:
            self.seen.append(line)
            rule = next((r for r in self.rules
                         if r.method == method and re.search(r.pattern, line)), None)
            if rule is not None and rule.skip > 0:
                rule.skip -= 1
                return None
            return rule

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        body = _body(h)
        rule = self._rule(h.command, f"{h.command} {h.path}")
        act = rule.act if rule else "pass"
        if act == "ghost" and rule is not None:
            size = rule.size or self.put.get(h.path.split("?")[0], 0)
            _send(h, 200, [("ETag", '"e"'), ("Content-Type", "binary/octet-stream")], b"",
                  length=size)
            return
        if act == "missing":
            _send(h, 404, [("Content-Type", "application/xml")], _MISSING)
            return
        if act == "hold":
            asked = re.fullmatch(r"bytes=(\d+)-(\d+)", h.headers.get("Range", ""))
            count = asked is None or int(asked[2]) - int(asked[1]) + 1 > self.hold_over
            with self.lock:
                self.held += count
                self.most_held = max(self.most_held, self.held)
            time.sleep(self.hold)
            with self.lock:
                self.held -= count
        if act == "slow":
            _send(h, 503, [("Content-Type", "application/xml")], _SLOW)
            return
        if act == "busy":
            _send(h, 429, [("Content-Type", "application/xml")], _BUSY)
            return
        if act == "denied":
            _send(h, 403, [("Content-Type", "application/xml")], _DENIED)
            return
        if h.command == "PUT":  # a whole object, or a part of one: its bytes, by path
            with self.lock:
                path = h.path.split("?")[0]
                first = "partNumber=1&" in h.path or "?" not in h.path
                self.put[path] = (0 if first else self.put.get(path, 0)) + len(body)
        if act == "drop":
            _send(h, 200, [("ETag", '"d41d8cd98f00b204e9800998ecf8427e"')], b"")
            return
        if act == "cut" and body:
            body = body[: len(body) // 2]
        if act == "flip" and body:
            at = len(body) // 2
            body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1:]
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in ("connection", "content-length", "transfer-encoding",
                                        "content-md5")}
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
        conn.request(h.command, h.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        length = resp.getheader("content-length")
        conn.close()
        out = [(k, v) for k, v in resp.getheaders()
               if k.lower() not in ("transfer-encoding", "connection", "content-length")]
        if rule is not None and act == "inject" and resp.status == 200:
            prefix = re.search(rb"<Prefix>([^<]*)</Prefix>", data)
            pre = prefix.group(1) if prefix else b""
            items = b"".join(b"<Contents><Key>" + pre + k + b"</Key><Size>100</Size>"
                             b"<LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                             b'<ETag>"e"</ETag><StorageClass>STANDARD</StorageClass></Contents>'
                             for k in rule.keys)
            data = data.replace(b"</Prefix>", b"</Prefix>" + items, 1)
        if rule is not None and act == "small" and resp.status == 200:
            data = re.sub(rb"<Size>[0-9]+</Size>", b"<Size>100</Size>", data)
        if h.command == "HEAD":
            _send(h, resp.status, out, b"", length=int(length or 0))
        else:
            _send(h, resp.status, out, data)


def _body(h: http.server.BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = b""
        while size := int(h.rfile.readline().split(b";")[0], 16):
            out += h.rfile.read(size)
            h.rfile.readline()
        while h.rfile.readline() not in (b"\r\n", b""):
            pass
        return out
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""


def _send(h: http.server.BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]],
          data: bytes, length: int | None = None) -> None:
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(data) if length is None else length))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)
    h.wfile.flush()
