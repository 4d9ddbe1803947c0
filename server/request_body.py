"""Reading `POST /api/sql`'s body: its framing and encoding, then its JSON.

The body takes two fields, `sql` and `namespace`, both strings. msgspec checks
that shape first, against a typed struct, without building anything else: a
10 KB gzip body of 3.4 million empty lists (`{"sql": …, "x": [[], [], …]}`)
held the event loop 0.7-3.6 s in `json.loads`, every client waiting. Only then
are the two strings read, by `json.loads` (which keeps a lone surrogate such
as `"\\ud800"` for `check_text` to name), and a big body on a statement thread.

What a proxy in front might read otherwise is refused rather than guessed: a
key sent twice, an encoding the server does not apply, a body not in UTF-8."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from catalog.errors import InvalidRequest, Unavailable

from .body_decoding import BadEncoding, decode, encoding_of
from .budget import OverBudget
from .executor import PARSE_ON_THREAD_CHARS
from .result import error_body
from .state import Cairn
from .text import check_header, check_text

CAIRN: web.AppKey[Cairn] = web.AppKey("cairn", Cairn)  # the server, in the app
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # contract §3, before folding

# The Content-Encodings aiohttp decodes (any other it passes through as it
# came: `x-gzip`, `gzip, gzip`, `br` without brotli installed).
DECODED = frozenset({"gzip", "deflate"})
# The request's key for its decoded body's bytes, counted against the budget
# once decoded and given back with the body's by `body_budget`.
DECODED_HELD: web.RequestKey[int] = web.RequestKey("decoded_held", int)
HOLDER: web.RequestKey[str] = web.RequestKey("budget_holder", str)  # budget.holder ("": admin)


class BodyTimeout(InvalidRequest):
    """The client did not send its whole body in time (answered 408, connection closed)."""


class UnreadableBody(InvalidRequest):
    """The body does not decode as its Content-Encoding says, its chunks are
    malformed, or it is framed or encoded in a way the server does not apply
    (answered 400, connection closed)."""


class UnknownExpectation(InvalidRequest):
    """An `Expect` other than `100-continue` (answered 417, connection closed)."""

    status = 417


class ClientGone(Exception):
    """The client closed its connection before its body arrived or while its
    answer was being sent: not a bug, and there is no one to answer."""


class BodiesBusy(Unavailable):
    """The bodies being received and held, all connections together, leave no
    room for this one (`[server] max_inflight_request_bytes`, budget.py):
    503 with Retry-After, before its body is read."""

    retry_after = 1


@contextlib.contextmanager
def body_budget(request: web.Request, cairn: Cairn, who: str | None = None) -> Iterator[None]:
    """The request's body counted against the server's budget while the
    request runs (and against role user `who`'s share of it, budget.py): its
    Content-Length (413 past max_request_bytes is read_body's answer), or
    max_request_bytes for a chunked body, whose size is not known."""
    limit = cairn.config.server.max_request_bytes
    size = limit if request.content_length is None and request.body_exists else min(
        request.content_length or 0, limit)
    _take(cairn, size, who)
    request[HOLDER] = who or ""
    try:
        yield
    finally:
        cairn.inflight.give(size + request.pop(DECODED_HELD, 0), who)


def _take(cairn: Cairn, size: int, who: str | None) -> None:
    budget = cairn.inflight
    try:
        budget.take(size, who)
    except OverBudget as exc:
        held = budget.refusal(exc, who, size, "request bodies", "this one's")
        raise BodiesBusy(f"{held} [server] max_inflight_request_bytes ({budget.limit}): try "
                         "again shortly") from None


def check_framing(request: web.Request) -> None:
    """Refuse a body whose encoding aiohttp would not undo: it would be read as
    it came (`x-gzip` on plain JSON ran; `gzip` framed as `gzip, gzip` was
    "not valid JSON"; `Transfer-Encoding: gzip, chunked` took the chunks and
    ignored the gzip)."""
    encoding = check_header(request.headers.get("Content-Encoding"), "Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in DECODED | {"identity"}:
        raise UnreadableBody(f"Content-Encoding {encoding[:100]!r} is not applied here: send "
                             "the body as it is, or with gzip or deflate")
    transfer = check_header(request.headers.get("Transfer-Encoding"), "Transfer-Encoding")
    if transfer is not None and transfer.strip().lower() != "chunked":
        raise UnreadableBody(f"Transfer-Encoding {transfer[:100]!r} is not applied here: only "
                             "chunked is (compress with Content-Encoding gzip)")


def check_expect(request: web.Request) -> None:
    """Refuse an `Expect` the server does not meet: aiohttp's own 417 was
    text/plain, outside the error middleware (not the contract's JSON)."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise UnknownExpectation("only Expect: 100-continue is understood")


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """The expect handler of /health, /metrics and /api/openapi.json: `100
    Continue`, or 417 INVALID_REQUEST (the contract's JSON) for another Expect."""
    try:
        check_expect(request)
    except UnknownExpectation as exc:
        resp = web.json_response(error_body(exc, 0.0), status=exc.status)
        resp.force_close()  # a body may follow, and is never read
        return resp
    await send_continue(request)
    return None


async def send_continue(request: web.Request) -> None:
    """`100 Continue`, as aiohttp's own expect handler writes it."""
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


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
        if closed(request):  # a compressed body cut off
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
        body = await cairn.run(decode, raw, encoding, cairn.config.server.max_request_bytes)
    except BadEncoding as exc:
        raise UnreadableBody(f"request body does not decode as its Content-Encoding "
                             f"({encoding}) says: {exc}") from None
    # Held beside what was sent until the request ends: 10 KB of gzip is 10 MB
    # here, outside the budget until 2026-12-06.
    _take(cairn, len(body), request.get(HOLDER) or None)
    request[DECODED_HELD] = len(body)
    return body


def closed(request: web.Request) -> bool:
    """Whether the client's connection is closed (or closing): nothing can be sent."""
    transport = request.transport
    return transport is None or transport.is_closing()


def is_json_type(ctype: str) -> bool:
    """`application/json` or `application/<x>+json`, parameters aside (a
    parameter naming json, `text/plain; x=+json`, does not count)."""
    essence = ctype.split(";", 1)[0].strip().lower()
    kind, _, sub = essence.partition("/")
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


def check_content_type(request: web.Request) -> None:
    ctype = check_header(request.headers.get("Content-Type", ""), "Content-Type") or ""
    if ctype and not is_json_type(ctype):
        raise InvalidRequest(f"Content-Type must be application/json, not {ctype[:200]!r}")


async def read_sql_request(request: web.Request, cairn: Cairn,
                           body_timeout: float = 0) -> tuple[str, str | None]:
    """`sql` and `namespace` (folded) of the request's body; a big body is read
    on a statement thread, as a big statement is parsed on one."""
    check_content_type(request)
    check_framing(request)
    raw = await read_body(request, body_timeout)
    if len(raw) > PARSE_ON_THREAD_CHARS:
        return await cairn.run(parse_sql_body, raw)
    return parse_sql_body(raw)


class SqlBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body's shape: its two fields and nothing else."""

    sql: str | None = None
    namespace: str | None = None


SHAPE = msgspec.json.Decoder(SqlBody)
# A lone surrogate's escape, which msgspec refuses as "truncated" input; swapped
# for U+FFFD (the same length, still valid) only to check the shape, so that
# `check_text` still names the character.
SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
UNKNOWN_FIELD = re.compile(r"unknown field `(.*)`", re.S)
JSON_OBJECT = 'request body must be a JSON object like {"sql": "..."}'


def parse_sql_body(raw: bytes) -> tuple[str, str | None]:
    """The body's `sql` and `namespace`, or INVALID_REQUEST saying what is wrong."""
    _check_shape(raw)
    pairs = json.loads(raw.decode("utf-8"), object_pairs_hook=list)  # strings only, now
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise InvalidRequest(f'request body has "{key}" more than once: send it once '
                                 "(a proxy in front might read the other one)")
        body[key] = value
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise InvalidRequest('request body needs "sql", a string')
    if not sql.strip():
        raise InvalidRequest('"sql" is empty')
    check_text(sql, '"sql"')
    namespace = body.get("namespace")
    if namespace is not None:
        check_text(namespace, '"namespace"')
    if namespace and not NAME.fullmatch(namespace):  # it was echoed whole in NOT_FOUND
        more = "…" if len(namespace) > 64 else ""
        raise InvalidRequest('"namespace" must be a name ([A-Za-z_][A-Za-z0-9_]*, at most 64 '
                             f"characters), not {namespace[:64]!r}{more}")
    return sql, namespace.lower() if namespace else None


def _check_shape(raw: bytes) -> None:
    """An object of `sql` and `namespace`, strings or null, in UTF-8 JSON."""
    try:
        try:
            SHAPE.decode(raw)
        except msgspec.DecodeError:
            if not SURROGATE.search(raw):
                raise
            SHAPE.decode(SURROGATE.sub(rb"\\uFFFD", raw))
    except msgspec.ValidationError as exc:
        message = str(exc)
        if (unknown := UNKNOWN_FIELD.search(message)) is not None:
            name = unknown.group(1)
            more = "…" if len(name) > 64 else ""
            raise InvalidRequest(f"request body has a field {name[:64]!r}{more}: it takes only "
                                 '"sql" and "namespace"') from None
        if message.endswith("`$.namespace`"):
            raise InvalidRequest('"namespace" must be a string') from None
        if message.endswith("`$.sql`"):
            raise InvalidRequest('request body needs "sql", a string') from None
        raise InvalidRequest(JSON_OBJECT) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON in UTF-8 ({exc})") from None
    except RecursionError:
        raise InvalidRequest("request body nests JSON arrays or objects too deeply") from None
