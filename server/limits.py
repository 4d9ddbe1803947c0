"""Open files and HTTP connections: no client can take the descriptors the
server's own files need.

Every connection holds a file descriptor. Measured with the usual soft limit of
1,024: a client that opened 1,100 idle connections (no request, so nothing
answered before `header_timeout_seconds`) left every other client's
connection reset, and a BACKUP running meanwhile failed with "Too many open
files" reading its source, and could not clean up its target. So at start the
soft limit is raised to the hard one (`raise_open_files`, as Go's runtime
does), and HTTP connections past `[server] max_connections` (or past what the
limit leaves once RESERVED descriptors are kept for the server's own files and
the PostgreSQL listener) are answered 503 UNAVAILABLE and closed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cairn")

OPEN_FILES_MAX = 1 << 20  # the soft limit is raised to the hard one, up to this
RESERVED = 712  # descriptors kept from connections: RocksDB, DuckDB, backups (512), pgwire (200)
_FLOOR = 16  # connections allowed however low the limit
LINGER = 1.0  # seconds a refused connection waits for its request, then to be closed
LINGER_MAX = 256  # refused connections left to linger; past it one is answered and closed at once


def raise_open_files() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (at most OPEN_FILES_MAX);
    (soft before, soft now). Where there is no such limit: (0, 0)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0, 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES_MAX if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_MAX)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, want
    return soft, soft


def connection_limit(configured: int, open_files: int) -> int:
    """HTTP connections allowed: `configured`, within what `open_files` leaves."""
    if open_files <= 0:
        return configured
    return min(configured, max(_FLOOR, open_files - RESERVED))


class Connections:
    """Counts the HTTP listener's open connections; past `limit` a new one is
    answered 503 UNAVAILABLE (JSON, as every error) and closed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.lingering = 0

    def factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def protocol() -> asyncio.Protocol:
            if self.open >= self.limit:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning("HTTP connection refused: %d open, max_connections %d "
                                "(refused so far: %d)", self.open, self.limit, self.refused)
                return _Refused(self)
            self.open += 1
            return _Counted(make(), self)

        return protocol


def _answer(limit: int) -> bytes:
    body = json.dumps({"status": "error", "results": [], "took": 0, "error": {
        "code": "UNAVAILABLE",
        "message": f"too many connections: the server holds at most {limit} "
                   "(max_connections); try again",
    }}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nRetry-After: 1\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Refused(asyncio.Protocol):
    """Answers 503 once the request starts to arrive (a client still writing
    its request to a connection closed under it would read a reset, not the
    answer), or after LINGER seconds of silence; then reads and drops what
    comes until the client closes, LINGER seconds at most."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.transport: Any = None  # uvloop's transports are no asyncio.Transport
        self.answered = False
        self.lingers = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.connections.lingering >= LINGER_MAX:  # a flood: no descriptor waits
            transport.write(_answer(self.connections.limit))
            transport.close()
            self.answered = True
            return
        self.lingers = True
        self.connections.lingering += 1
        self.timer = asyncio.get_running_loop().call_later(LINGER, self._answer)

    def data_received(self, data: bytes) -> None:
        self._answer()

    def eof_received(self) -> bool:
        self._answer()
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.lingers:
            self.lingers = False
            self.connections.lingering -= 1

    def _answer(self) -> None:
        if self.answered:
            return
        self.answered = True
        self.transport.write(_answer(self.connections.limit))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(LINGER, self.transport.close)


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted until it is lost."""

    def __init__(self, inner: asyncio.Protocol, connections: Connections) -> None:
        self.inner = inner
        self.connections = connections
        self.counted = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.connections.open -= 1
        self.inner.connection_lost(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
