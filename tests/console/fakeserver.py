"""A hostile HTTP server for `cairn sql` to talk to: each request is recorded
and answered by a function the test gives (status, headers, body)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# None: the function wrote its answer itself
Answer = Callable[[http.server.BaseHTTPRequestHandler],
                  tuple[int, dict[str, str], bytes] | None]


@dataclass
class Fake:
    url: str
    # method, path, headers of each request
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def fake_server(answer: Answer) -> Iterator[Fake]:
    fake = Fake("")

    class Handler(http.server.BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # TCP_NODELAY (tests/storage_backup/s3liar.py)

        def log_message(self, *args: object) -> None:
            pass

        def _any(self) -> None:
            fake.seen.append((self.command, self.path, dict(self.headers.items())))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answered = answer(self)
            if answered is None:
                return
            status, headers, body = answered
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _any

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
