"""PostgreSQL protocol 3.0 framing: reading bounded frontend messages and
building backend messages.

Every byte a client sends is hostile: lengths are checked against hard limits
before anything is read, and a payload is read through `Payload`, whose every
read is bounds-checked and raises `ProtocolViolation` instead of IndexError."""

from __future__ import annotations

import asyncio
import struct

from ..budget import Budget, OverBudget

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608

MAX_STARTUP = 10_000  # a startup packet is a few hundred bytes in practice
MAX_MESSAGE = 64 * 1024 * 1024  # hard ceiling; the server passes [server] max_request_bytes
MAX_AUTH = 65_535  # a message before authentication ends (PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH)
# A message body from this size on is counted against the server's budget for
# bodies being received (`[server] max_inflight_request_bytes`) while it arrives.
BUDGETED = 16 * 1024  # below it: 200 connections hold at most 3.2 MB

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_HEAD = struct.Struct("!ci")
SHORT = "insufficient data left in message: it is shorter than its contents say"  # PostgreSQL's


class ProtocolViolation(Exception):
    """The client broke the protocol: answered with a FATAL 08P01, then closed,
    when its framing is broken (start-up, a message's type or length); inside a
    logged-in message's body, whose length said where it ends, an ERROR 08P01
    and the connection goes on, as PostgreSQL's (connection.py)."""


class Closed(Exception):
    """The client went away."""


class Busy(Exception):
    """A message that does not fit the server's budget for bodies being
    received: answered with a FATAL 53200, then closed (its bytes are not read)."""


class Payload:
    """A message body, read front to back; never reads past its end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation(SHORT)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def uint16(self) -> int:
        """A count: PostgreSQL reads the counts of Parse and Bind as unsigned."""
        return int(_U16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def uint32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def int16s(self, count: int) -> list[int]:
        """`count` int16s at once (a Bind's format codes: up to 65,535)."""
        return list(struct.unpack(f"!{count}h", self._take(2 * count)))

    def values(self, count: int) -> list[bytes | None]:
        """A Bind's `count` parameter values, each an int32 length (-1: NULL)
        and its bytes, read in one tight loop (65,535 of them cost 75 ms
        through `int32` and `take`, on the event loop)."""
        data, pos, end = self.data, self.pos, len(self.data)
        out: list[bytes | None] = []
        append, length_at = out.append, _I32.unpack_from
        for _ in range(count):
            if pos + 4 > end:
                raise ProtocolViolation(SHORT)
            n = length_at(data, pos)[0]
            pos += 4
            if n == -1:
                append(None)
                continue
            if n < 0 or pos + n > end:
                raise ProtocolViolation(SHORT)
            append(data[pos:pos + n])
            pos += n
        self.pos = pos
        return out

    def byte(self) -> bytes:
        return self._take(1)

    def take(self, n: int) -> bytes:
        return self._take(n)

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("invalid string in message: not terminated")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("string is not valid UTF-8") from None

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def end(self) -> None:
        """Every byte read: bytes after a message's contents are a violation,
        as PostgreSQL's `pq_getmsgend` says (so `Q "SELECT 1\\0DROP ..."` runs
        nothing, where reading up to the first NUL would run SELECT 1)."""
        if self.pos != len(self.data):
            raise ProtocolViolation(
                f"invalid message format: {len(self.data) - self.pos} bytes after its contents")


async def _exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise Closed() from None


async def read_startup(reader: asyncio.StreamReader) -> tuple[int, Payload]:
    """The untagged first message: (code, body) where code is the protocol
    version or SSLRequest / GSSENCRequest / CancelRequest."""
    length = _I32.unpack(await _exactly(reader, 4))[0]
    if not 8 <= length <= MAX_STARTUP:
        raise ProtocolViolation(f"startup packet length {length} is out of range")
    body = await _exactly(reader, length - 4)
    p = Payload(body)
    return p.int32(), p


async def read_message(reader: asyncio.StreamReader, limit: int = MAX_MESSAGE,
                       budget: Budget | None = None, seconds: float = 0,
                       why: str = "[server] max_request_bytes",
                       who: str | None = None, tags: bytes = b"") -> tuple[bytes, Payload]:
    """One tagged message: (type byte, body); longer than `limit` is a violation.
    A body of BUDGETED bytes or more is counted against `budget` while it
    arrives (200 connections each sending 10 MB but its last byte held 2 GB),
    and must arrive within `seconds` (0: no bound) of its header, or the
    connection is closed: a header alone held its size of the budget for as
    long as the client stayed silent. `who`: the role user whose share it
    counts against too (budget.holder). A type not in `tags` (when given) is
    refused before its body is read, as PostgreSQL's "invalid frontend message
    type": a header saying 64 MiB held that much of the budget and the socket
    for body_timeout_seconds first, only to be refused."""
    tag, length = _HEAD.unpack(await _exactly(reader, 5))
    if tags and tag not in tags:
        raise ProtocolViolation(f"invalid frontend message type {tag[0]} ({tag!r})")
    if not 4 <= length <= min(limit, MAX_MESSAGE) + 4:
        raise ProtocolViolation(f"message length {length} is out of range (at most "
                                f"{min(limit, MAX_MESSAGE)} bytes: {why})")
    size = length - 4
    if budget is None or size < BUDGETED:
        return tag, Payload(await _exactly(reader, size) if size else b"")
    try:
        budget.take(size, who)
    except OverBudget as exc:
        held = budget.refusal(exc, who, size, "requests", "this message's")
        raise Busy(f"{held} [server] max_inflight_request_bytes ({budget.limit}): connect again "
                   "shortly") from None
    try:
        async with asyncio.timeout(seconds or None):
            return tag, Payload(await _exactly(reader, size))
    except TimeoutError:
        raise ProtocolViolation(f"a message of {size} bytes did not arrive within {seconds:g} s "
                                "of its header ([server] body_timeout_seconds)") from None
    finally:
        budget.give(size, who)


# --- backend messages --------------------------------------------------------------


def message(tag: bytes, body: bytes = b"") -> bytes:
    return tag + _I32.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.replace("\x00", "").encode("utf-8", "replace") + b"\x00"


def auth_request(code: int, extra: bytes = b"") -> bytes:
    return message(b"R", _I32.pack(code) + extra)


AUTH_OK = auth_request(0)


def negotiate_protocol(unrecognised: list[str]) -> bytes:
    """NegotiateProtocolVersion: protocol 3.0 is the newest spoken here, and
    the `_pq_.` start-up options not understood (as PostgreSQL answers a
    client that asked for a newer minor version or a protocol option)."""
    return message(b"v", _I32.pack(PROTOCOL_3) + _I32.pack(len(unrecognised))
                   + b"".join(cstr(name) for name in unrecognised))


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key(pid: int, secret: int) -> bytes:
    return message(b"K", _I32.pack(pid) + _I32.pack(secret))


def ready(status: bytes) -> bytes:
    return message(b"Z", status)


def fields_message(tag: bytes, fields: dict[str, str]) -> bytes:
    body = b"".join(k.encode() + cstr(v) for k, v in fields.items() if v is not None)
    return message(tag, body + b"\x00")


def error(severity: str, code: str, text: str, **extra: str) -> bytes:
    fields = {"S": severity, "V": severity, "C": code, "M": text}
    fields.update(extra)
    return fields_message(b"E", fields)


def notice(text: str, severity: str = "NOTICE", code: str = "00000") -> bytes:
    return fields_message(b"N", {"S": severity, "V": severity, "C": code, "M": text})


def row_description(columns: list[tuple[str, int, int, int]]) -> bytes:
    """columns: (name, type oid, type size, format code)."""
    parts = [_I16.pack(len(columns))]
    for name, oid, size, fmt in columns:
        parts.append(cstr(name) + struct.pack("!ihihih", 0, 0, oid, size, -1, fmt))
    return message(b"T", b"".join(parts))


def data_row(values: list[bytes | None]) -> bytes:
    parts = [_I16.pack(len(values))]
    for v in values:
        if v is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(_I32.pack(len(v)))
            parts.append(v)
    return message(b"D", b"".join(parts))


def parameter_description(oids: list[int]) -> bytes:
    return message(b"t", _U16.pack(len(oids)) + b"".join(_U32.pack(o) for o in oids))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


# What a logged-in client may send (COPY's d, c and f: ignored, PostgreSQL's too;
# F, the fast-path FunctionCall: read, then refused with 0A000)
FRONTEND = b"QPBDECHSXdcfF"


def function_call(body: Payload) -> tuple[int, list[int]]:
    """A FunctionCall's function OID and its format codes (its arguments', then
    its result's), its every part read and checked as a Bind's are: a malformed
    one is a ProtocolViolation (libpq's PQfn sends it; Cairn has no functions
    to call this way). Its codes are not checked here (connection.py: 22023)."""
    fid = body.uint32()
    formats = body.int16s(body.uint16())
    args = body.values(body.uint16())
    result = body.int16()
    body.end()
    if len(formats) not in (0, 1, len(args)):
        raise ProtocolViolation(f"function call message contains {len(formats)} argument "
                                f"formats but {len(args)} arguments")
    return fid, [*formats, result]

PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
EMPTY_QUERY = message(b"I")
PORTAL_SUSPENDED = message(b"s")
