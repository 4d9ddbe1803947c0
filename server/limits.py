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
the PostgreSQL listener) are answered 503 UNAVAILABLE and closed. Past the
limit an idle connection (no request being received, run or answered) gives
its place first: the oldest is answered the same 503 and closed, and the
newcomer is served; only when every connection is busy is the newcomer
refused. Before 2026-12-07 `max_connections` sockets that never sent a byte
(no token needed) had every request, an admin's too, answered 503 for as
long as they were renewed (each lived `header_timeout_seconds`).

The catalog holds descriptors for good as well: RocksDB opens its directory
again for each column family created while it runs (until 2026-12-06 one per
table, its write buffer; now none) and keeps it until the family is dropped,
and it keeps each of its data (SST) files open. With the limit at 1,024,
750 tables created and 235 idle connections (under the 312 admitted then)
left nothing: a SELECT was 500 "data directory is damaged" (EMFILE opening a
Parquet file) and new connections were reset. So what the catalog holds
(Catalog.descriptors) is taken off what connections may hold, HTTP's and
PostgreSQL's both, counted as each new connection comes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from .web import HEADERS

log = logging.getLogger("cairn")

OPEN_FILES_MAX = 1 << 20  # the soft limit is raised to the hard one, up to this
OWN = 512  # descriptors kept for the server's own files: RocksDB's, DuckDB's, backups'
PGWIRE_MAX = 200  # PostgreSQL connections at most
RESERVED = OWN + PGWIRE_MAX  # descriptors kept from HTTP connections (and column families)
_FLOOR = 16  # connections allowed (each listener) however low the limit
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


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE now; 0 where there is none (or no such limit)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 0 if soft == resource.RLIM_INFINITY else soft


def connection_limit(configured: int, open_files: int, families: int = 0) -> int:
    """HTTP connections allowed: `configured`, within what `open_files` leaves
    once RESERVED descriptors and the catalog's (`families`,
    Catalog.descriptors) are kept."""
    if open_files <= 0:
        return configured
    return min(configured, max(_FLOOR, open_files - RESERVED - families))


def pgwire_limit(configured: int, open_files: int, families: int = 0) -> int:
    """PostgreSQL connections allowed: PGWIRE_MAX, within what `open_files`
    leaves once OWN descriptors, the catalog's (`families`) and the
    HTTP listener's connections (`connection_limit` of `configured`, its
    max_connections) are kept."""
    if open_files <= 0:
        return PGWIRE_MAX
    free = open_files - OWN - families - connection_limit(configured, open_files, families)
    return min(PGWIRE_MAX, max(_FLOOR, free))


class Connections:
    """Counts the HTTP listener's open connections; past `limit()` (asked as
    each comes: it shrinks as tables are created) a new one is answered 503
    UNAVAILABLE (JSON, as every error) and closed; `linger()` of those may
    wait for their request (`_Refused`)."""

    def __init__(self, limit: Callable[[], int],
                 linger: Callable[[], int] = lambda: LINGER_MAX, send_timeout: float = 0.0) -> None:
        self.limit = limit
        self.linger = linger
        self.send_timeout = send_timeout  # [server] send_timeout_seconds (`_Counted.pause_writing`)
        self.open = 0
        self.refused = 0
        self.lingering = 0
        self.evicted = 0
        self.live: dict[_Counted, None] = {}  # the counted connections, oldest first

    def factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def protocol() -> asyncio.Protocol:
            limit = self.limit()
            if self.open >= limit and not self._make_room(limit):
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning("HTTP connection refused: %d open, at most %d (max_connections, "
                                "or what the open-files limit leaves; refused so far: %d)",
                                self.open, limit, self.refused)
                return _Refused(self, limit, self.linger())
            self.open += 1
            counted = _Counted(make(), self)
            self.live[counted] = None
            return counted

        return protocol

    def _make_room(self, limit: int) -> bool:
        """Every place is taken: answer the oldest idle connection 503 and close
        it (its place is the newcomer's); False if every connection is busy.
        One that never sent a byte goes first: a client's kept-alive connection
        between two requests was the oldest idle one, and a flood of silent
        sockets closed it under the client (an admin's next request a broken
        pipe) before any of theirs."""
        idle = [c for c in self.live if c.idle()]
        oldest = next((c for c in idle if not c.heard), idle[0] if idle else None)
        if oldest is None:
            return False
        oldest.evict(_answer(limit))
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning("HTTP connections: every place taken (%d); the oldest idle one closed "
                        "for a newer one (closed so far: %d)", limit, self.evicted)
        return True


def _answer(limit: int) -> bytes:
    body = json.dumps({"status": "error", "results": [], "took": 0, "error": {
        "code": "UNAVAILABLE",
        "message": f"too many connections: the server holds at most {limit} now "
                   "(max_connections, or what its open-files limit leaves); try again",
    }}).encode()
    # Not an answer of the app's (written here, before aiohttp reads the
    # request): web.HEADERS added by hand.
    headers = "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items()).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            + headers + b"Connection: close\r\nRetry-After: 1\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Refused(asyncio.Protocol):
    """Answers 503 once the request starts to arrive (a client still writing
    its request to a connection closed under it would read a reset, not the
    answer), or after LINGER seconds of silence; then reads and drops what
    comes until the client closes, LINGER seconds at most. At most `linger`
    wait so (LINGER_MAX, fewer when the open-files limit leaves fewer, as for
    connections: 219 lingering beside 750 tables took the last descriptors);
    past them one is answered and closed at once."""

    def __init__(self, connections: Connections, limit: int, linger: int) -> None:
        self.connections = connections
        self.limit = limit
        self.linger = linger
        self.transport: Any = None  # uvloop's transports are no asyncio.Transport
        self.answered = False
        self.lingers = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.connections.lingering >= self.linger:  # a flood: no descriptor waits
            transport.write(_answer(self.limit))
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
        self.transport.write(_answer(self.limit))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(LINGER, self.transport.close)


_BY_TRANSPORT: dict[Any, _Counted] = {}  # the counted connections, by their transports


def answered(transport: Any) -> None:
    """The app has answered a request on `transport`'s connection (`_Counted.idle`;
    request_share.count_answers)."""
    if (counted := _BY_TRANSPORT.get(transport)) is not None:
        counted.answered += 1


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted until it is lost."""

    def __init__(self, inner: asyncio.Protocol, connections: Connections) -> None:
        self.inner = inner
        self.connections = connections
        self.counted = True
        self.heard = False  # a byte received
        self.answered = 0  # requests the app has answered (count_answers)
        self.stall: asyncio.TimerHandle | None = None  # answers unread past high water
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        _BY_TRANSPORT[transport] = self
        self.inner.connection_made(transport)
        if self.connections.send_timeout > 0:
            # Any byte the kernel will not take pauses writing (`pause_writing`
            # starts the send_timeout clock; writing resumes once all is sent).
            # Under the default 64 KiB high water an answer left part unsent
            # (a 40 KB one the client never reads) paused nothing, and the
            # connection, never idle with bytes to send, held its place for good:
            # aiohttp's keep-alive close waits for them.
            with contextlib.suppress(AttributeError, ValueError):
                transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]

    def idle(self) -> bool:
        """No request being received, run or answered, nothing left to send:
        no byte received yet; or every request aiohttp has parsed on it was
        answered by the app (`answered`, counted by `count_answers` when its
        handler returns or its answer is prepared, aiohttp's own 417 too) and
        none runs (aiohttp may still be dropping an unread body for up to 10 s,
        "lingering": its answer went). Between a request's
        headers and its handler's start it is parsed and not yet answered. A
        protocol that does not say so is busy."""
        if self.transport is None or self.transport.get_write_buffer_size():
            return False
        if not self.heard:  # not a byte yet: no request to lose (its handler may not run yet)
            return True
        inner = self.inner
        return (getattr(inner, "_request_in_progress", True) is False
                and not getattr(inner, "_messages", True)
                and self.answered >= getattr(inner, "_request_count", self.answered + 1))

    def evict(self, answer: bytes) -> None:
        """Give up this connection's place now: `answer`, then closed."""
        self._uncount()
        with contextlib.suppress(Exception):  # it may be closing already
            self.transport.write(answer)
        self.transport.close()

    def _uncount(self) -> None:
        _BY_TRANSPORT.pop(self.transport, None)
        if self.counted:
            self.counted = False
            self.connections.open -= 1
            self.connections.live.pop(self, None)

    def data_received(self, data: bytes) -> None:
        self.heard = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        """Answers not taken pile up past the transport's high-water mark: a
        client that takes none of them for `send_timeout_seconds` is
        disconnected. Pipelined requests whose answers were never read (a
        stranger's `GET /static/console.js` by the thousand) held the
        connection busy for good, every handler waiting to send; only a large
        /api/sql answer had a deadline (app.send_answer)."""
        seconds = self.connections.send_timeout
        if seconds > 0 and self.stall is None:
            self.stall = asyncio.get_running_loop().call_later(seconds, self._stalled, seconds)
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self._unstall()
        self.inner.resume_writing()

    def _stalled(self, seconds: float) -> None:
        self.stall = None
        log.warning("HTTP: a client took none of its answers for %g s (send_timeout_seconds), "
                    "%d bytes of them unsent: connection closed", seconds,
                    self.transport.get_write_buffer_size())
        self.transport.abort()  # close() would wait for them to be sent

    def _unstall(self) -> None:
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        self._uncount()
        self.inner.connection_lost(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
