"""Reading `POST /api/sql`'s body: within its time, as its encoding says, and
telling a client that hung up part-way (not a bug) from a malformed body."""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from catalog.errors import InvalidRequest

from .body_decoding import BadEncoding, decode, encoding_of
from .state import Cairn
from .text import check_header, check_text

CAIRN: web.AppKey[Cairn] = web.AppKey("cairn", Cairn)  # the server, in the app
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # contract §3, before folding


class BodyTimeout(InvalidRequest):
    """The client did not send its whole body in time (answered 408, connection closed)."""


class UnreadableBody(InvalidRequest):
    """The body does not decode as its Content-Encoding says, or its chunks are
    malformed (answered 400, connection closed)."""


class ClientGone(Exception):
    """The client closed its connection before its body arrived or while its
    answer was being sent: not a bug, and there is no one to answer."""


async def read_body(request: web.Request, seconds: float) -> bytes:
    """The request body, read within `seconds` (0: no limit), so a client that
    stops sending half-way does not hold a connection and a handler forever."""
    if not seconds or request.content.is_eof():  # all of it is here: no wait to bound
        return await _read(request)
    try:
        async with asyncio.timeout(seconds):
            return await _read(request)
    except TimeoutError:
        raise BodyTimeout(
            f"request body not received within {seconds:g} s (body_timeout_seconds)"
        ) from None


async def _read(request: web.Request) -> bytes:
    try:
        raw = await request.read()
    except RequestPayloadError as exc:
        if isinstance(exc.__cause__, ContentEncodingError):  # `gzip` on bytes that are not
            encoding = check_header(request.headers.get("Content-Encoding", ""),
                                    "Content-Encoding")
            raise UnreadableBody(
                f"request body does not decode as its Content-Encoding ({encoding}) says"
            ) from None
        if _closed(request):  # a compressed body cut off
            raise ClientGone("the client closed its connection before its body was "
                             "complete") from None
        raise UnreadableBody("request body could not be read: it ended early or its "
                             "chunks are malformed") from None
    except ConnectionError:  # aiohttp's "Connection lost": the client hung up
        raise ClientGone("the client closed its connection before its body was "
                         "complete") from None
    return await decoded_body(request, raw)


async def decoded_body(request: web.Request, raw: bytes) -> bytes:
    """A compressed body decoded, now that all of it is here (body_decoding.py)."""
    encoding = encoding_of(request.headers)
    if encoding is None:
        return raw
    cairn = request.app[CAIRN]
    try:
        return await cairn.run(decode, raw, encoding, cairn.config.server.max_request_bytes)
    except BadEncoding as exc:
        raise UnreadableBody(f"request body does not decode as its Content-Encoding "
                             f"({encoding}) says: {exc}") from None


def _closed(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def is_json_type(ctype: str) -> bool:
    """`application/json` or `application/<x>+json`, parameters aside (a
    parameter naming json, `text/plain; x=+json`, does not count)."""
    essence = ctype.split(";", 1)[0].strip().lower()
    kind, _, sub = essence.partition("/")
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


async def read_sql_request(request: web.Request, body_timeout: float = 0) -> tuple[str, str | None]:
    ctype = check_header(request.headers.get("Content-Type", ""), "Content-Type") or ""
    if ctype and not is_json_type(ctype):
        raise InvalidRequest(f"Content-Type must be application/json, not {ctype[:200]!r}")
    raw = await read_body(request, body_timeout)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("request body is not valid JSON") from None
    except RecursionError:
        raise InvalidRequest("request body nests JSON arrays or objects too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest('request body must be a JSON object like {"sql": "..."}')
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise InvalidRequest('request body needs "sql", a string')
    if not sql.strip():
        raise InvalidRequest('"sql" is empty')
    check_text(sql, '"sql"')
    namespace = body.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidRequest('"namespace" must be a string')
    if namespace is not None:
        check_text(namespace, '"namespace"')
    if namespace and not NAME.fullmatch(namespace):  # it was echoed whole in NOT_FOUND
        more = "…" if len(namespace) > 64 else ""
        raise InvalidRequest('"namespace" must be a name ([A-Za-z_][A-Za-z0-9_]*, at most 64 '
                             f"characters), not {namespace[:64]!r}{more}")
    return sql, namespace.lower() if namespace else None
