"""A role user's share of the HTTP listener's places: requests in progress.

A request holds its connection's place from its headers to its answer, its
body's arrival included (up to `body_timeout_seconds`). One role user's
`max_connections` requests whose 1-byte bodies never came held every place:
every other request, an admin's too, was answered 503 "too many connections"
for as long as they were renewed (their bodies' bytes were nothing to
`max_inflight_request_bytes`). As the PostgreSQL listener keeps one role user
to a quarter of its places and role users together to all but a few, a role
user's requests in progress are at most a quarter of `[server]
max_connections` (never less than 1; of fewer when the open-files limit
leaves fewer, as for the connections themselves), and role users' together all but
budget.ADMIN_RESERVED: one more is answered 503 UNAVAILABLE with Retry-After: 1,
before its body is read, and its connection closed. Admins, and every caller
of `auth.mode = "none"`, are not counted."""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from catalog.errors import Unavailable

from . import limits
from .budget import shares

_HELD: weakref.WeakKeyDictionary[Any, Counter[str]] = weakref.WeakKeyDictionary()


class RequestsBusy(Unavailable):
    """A role user's requests in progress are at their share: 503 with
    Retry-After, before the body is read; the connection is closed (`close`)."""

    retry_after = 1
    close = True


def places(cairn: Any) -> int:
    """The HTTP connections the server takes now: `max_connections`, fewer
    when the open-files limit leaves fewer (as `limits.Connections` is given
    them at start, server/serving.py)."""
    return limits.connection_limit(cairn.config.server.max_connections,
                                   limits.open_files_limit(), cairn.catalog.descriptors())


def check_share(cairn: Any, who: str | None) -> None:
    """RequestsBusy if role user `who` (None: not counted) may not start one
    more request now (`Expect: 100-continue`: refused before the body is asked for)."""
    if who is not None:
        _check(_HELD.setdefault(cairn, Counter()), cairn, who)


@contextlib.contextmanager
def held_request(cairn: Any, who: str | None) -> Iterator[None]:
    """Role user `who`'s request counted while it runs (None: not counted)."""
    if who is None:
        yield
        return
    held = _HELD.setdefault(cairn, Counter())
    _check(held, cairn, who)
    held[who] += 1
    try:
        yield
    finally:
        held[who] -= 1
        if not held[who]:
            del held[who]


def _check(held: Counter[str], cairn: Any, who: str) -> None:
    limit = places(cairn)
    mine, together = shares(limit)
    if held[who] >= mine:
        raise RequestsBusy(
            f"too many requests of user '{who}' at once: it has {held[who]} in progress, its "
            f"share (a quarter) of the {limit} connections this server takes now ([server] "
            "max_connections, or what its open-files limit leaves); try again when one has "
            "ended")
    if held.total() >= together:
        raise RequestsBusy("too many requests of role users at once: the remaining places are "
                           "kept for admins; try again shortly")


async def answer_and_close(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Send `resp` and close the connection at once: its body is never read
    (aiohttp would otherwise wait up to 10 s for the rest of it, the place
    still held)."""
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    request.protocol.force_close()
    return resp


_COUNTED: web.RequestKey[bool] = web.RequestKey("answer_counted", bool)


def _count(request: web.BaseRequest) -> None:
    """Count `request` answered on its connection, once (limits.answered)."""
    if not request.get(_COUNTED):
        request[_COUNTED] = True
        limits.answered(request.transport)


def count_answers(app: web.Application) -> None:
    """Count each request `app` answers on its connection: one whose answer
    went is idle while aiohttp drops its unread body (limits.py). Its first
    middleware counts a handler's answer, `_count_prepared` one no middleware
    saw."""
    app.middlewares.insert(0, _count_answered)
    app.on_response_prepare.append(_count_prepared)


@web.middleware
async def _count_answered(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    finally:
        _count(request)


async def _count_prepared(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare: count an answer no middleware saw. aiohttp answers
    an `Expect` its default expect handler refuses (417, any route without one
    of ours: a 404's, /static/…) before the middlewares run: no token needed,
    max_connections connections so answered, kept alive, were never idle and
    held every place until header_timeout_seconds, renewed at will (every
    newcomer, an admin's too, 503). An answer prepared inside a handler is
    counted here first (the request still runs: limits._Counted.idle)."""
    _count(request)
