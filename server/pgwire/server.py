"""The listener: start-up (SSLRequest, CancelRequest, StartupMessage),
authentication, then one `Connection` per client.

A protocol violation (a bad length, an unknown message, a broken start-up) is
answered with FATAL 08P01 and the connection is closed; nothing a client sends
can stop the server. Start-up must finish within STARTUP_TIMEOUT seconds.

A connection that has not logged in yet holds its place only until a newer
one needs it: when every place is taken, the oldest connection still starting
is closed (FATAL 53300) to make room, and only connections that have logged
in make a newcomer be refused. 200 sockets that never sent a byte (no token
needed) held every place, the admins' reserve included (it is checked after
authentication), each for STARTUP_TIMEOUT, renewed at will."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from typing import Any

from .. import limits
from ..auth import USER_ID
from ..budget import holder, shares
from ..config_checks import tls_context
from ..state import Cairn, Session
from ..threadshare import held_by
from . import chatter, messages, pgcatalog, scram
from .connection import Connection
from .errors import PgError
from .kept import Rows, RowsBudget
from .session_functions import SessionInfo

log = logging.getLogger("cairn.pgwire")

STARTUP_TIMEOUT = 30.0
# Every place held by a logged-in connection: a newcomer may still send a
# CancelRequest (PostgreSQL serves one whatever max_connections), within
# CANCEL_WAIT seconds, CANCEL_SPARE such newcomers at once (a newer one
# closes the oldest).
CANCEL_WAIT, CANCEL_SPARE = 5.0, 8
TLS_LINGER = 2.0  # seconds a closed TLS connection may take to say goodbye
SHUTDOWN = messages.error("FATAL", "57P01", "terminating connection due to administrator command")
MAX_CONNECTIONS = limits.PGWIRE_MAX  # fewer when the open-files limit leaves fewer
# Slots role users never take (budget.ADMIN_RESERVED, as PostgreSQL's
# superuser_reserved_connections): an admin can always connect while role users
# hold the rest.


class PgServer:
    def __init__(self, cairn: Cairn) -> None:
        self.cairn = cairn
        self.cfg = cairn.config.pgwire
        # ConfigError naming the key and the file (config.load checked them).
        self.ssl: ssl.SSLContext | None = tls_context(self.cfg)
        auth = cairn.config.auth
        self.verifier = scram.Verifier(auth.tokens) if auth.mode == "token" else None
        self.catalog = pgcatalog.CatalogEngine()
        # The bytes of rows all connections' portals keep unsent (kept.py).
        self.portal_rows = RowsBudget(self.cfg.max_portal_rows_bytes_total,
                                      cairn.config.storage.duckdb_release_memory)
        self.connections: dict[int, tuple[int, Connection]] = {}
        self._clients: set[asyncio.StreamWriter] = set()
        # Those of `_clients` not logged in yet, oldest first (`_make_room`),
        # each with whether it has sent its start-up packet.
        self._starting: dict[asyncio.StreamWriter, bool] = {}
        self._spare: dict[asyncio.StreamWriter, None] = {}  # `_cancel_only`, oldest first
        self._role_users: dict[asyncio.StreamWriter, str] = {}  # a role user's connections
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self.open_files = limits.open_files_limit()  # raised at start (server/serving.py)

    def max_clients(self) -> int:
        """Connections allowed now: MAX_CONNECTIONS, fewer when the open-files
        limit leaves fewer once the HTTP listener's and the catalog's
        descriptors are kept (server/limits.py)."""
        return min(MAX_CONNECTIONS, limits.pgwire_limit(
            self.cairn.config.server.max_connections, self.open_files,
            self.cairn.catalog.descriptors()))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.cfg.host, self.cfg.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("pgwire listening on %s:%s%s", self.cfg.host, self.port,
                 " (TLS)" if self.ssl else "")

    async def close(self) -> None:
        """Stop listening, stop what connections run (their jobs are cancelled
        as by a CancelRequest), and close them; then the state can close."""
        if self._server is not None:
            self._server.close()
        for _, conn in list(self.connections.values()):
            conn.cancel()
            if conn.running is not None:
                conn.running.cancel()
        # Every client is told, as PostgreSQL tells them on a fast shutdown
        # (they read "server closed the connection unexpectedly" before), and
        # its connection ends by the closed socket. A task cancelled while
        # idle was logged by asyncio's start_server as an ERROR with a trace.
        for writer in list(self._clients):
            with contextlib.suppress(Exception):
                writer.write(SHUTDOWN)
            writer.close()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        tasks = [t for t in tasks if not t.done()]
        for task in tasks:  # one stuck in a statement: _client ends it quietly
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        if self._server is not None:
            await self._server.wait_closed()
        self.catalog.close()

    def cancel(self, pid: int, secret: int) -> None:
        entry = self.connections.get(pid)
        if entry is not None and secrets.compare_digest(entry[0].to_bytes(4, "big", signed=True),
                                                        secret.to_bytes(4, "big", signed=True)):
            entry[1].cancel()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._clients.add(writer)
        self._starting[writer] = False
        pid = 0
        conn: Connection | None = None
        try:
            if len(self._clients) > self.max_clients() and not self._make_room(writer):
                await self._cancel_only(reader, writer)
                return
            started = await asyncio.wait_for(self._startup(reader, writer), STARTUP_TIMEOUT)
            if started is None:
                return
            conn, pid, secret = started
            self.connections[pid] = (secret, conn)
            with held_by(conn.session):  # a role user's share of the statement threads
                await conn.serve()
        except PgError as exc:
            await _say(writer, exc.to_bytes())
        except messages.ProtocolViolation as exc:
            await _say(writer, messages.error("FATAL", "08P01", f"protocol violation: {exc}"))
        except messages.Busy as exc:
            await _say(writer, messages.error("FATAL", "53200", str(exc)))
        except TimeoutError:
            await _say(writer, messages.error("FATAL", "08P01", "start-up took too long"))
        except (messages.Closed, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the server stops (close): the client was told
            pass
        except Exception:
            if writer.is_closing():  # a write after the client left: not a bug
                return
            log.exception("pgwire: internal error")
            await _say(writer, messages.error("FATAL", "XX000", "internal error: this is a bug"))
        finally:
            if conn is not None:
                conn.portals.clear()  # its portals' rows' bytes
                conn.tally.release()  # its statements' and portals' bytes
                conn.held.release()  # its answers' bytes (answers.py)
            self.connections.pop(pid, None)
            self._clients.discard(writer)
            self._starting.pop(writer, None)
            self._spare.pop(writer, None)
            self._role_users.pop(writer, None)
            writer.close()
            if writer.get_extra_info("ssl_object") is not None:
                # TLS's close waits up to 30 s (ssl_shutdown_timeout) for the
                # peer's close_notify, the place already given back: a flood of
                # TLS logins refused at once held a descriptor each for 30 s.
                asyncio.get_running_loop().call_later(TLS_LINGER, writer.transport.abort)

    async def _startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> tuple[Connection, int, int] | None:
        asked: set[int] = set()  # each of SSLRequest and GSSENCRequest once, as PostgreSQL
        while True:
            code, body = await messages.read_startup(reader)
            if code in (messages.SSL_REQUEST, messages.GSSENC_REQUEST) and code not in asked:
                # Answered once each: one unauthenticated socket sending them without
                # end (never reading the answers) slowed everyone's SELECT 1 to 2 s.
                asked.add(code)
                if code == messages.GSSENC_REQUEST or self.ssl is None:
                    writer.write(b"N")
                    continue
                writer.write(b"S")
                await writer.drain()
                if getattr(reader, "_buffer", b""):  # asyncio's bytes read, not yet taken
                    # Sent before the handshake, so in plain text: a man in the middle's
                    # start-up and queries were run and answered inside the client's TLS
                    # session (PostgreSQL's CVE-2021-23214 and its answer).
                    raise PgError("08P01", "received unencrypted data after SSL request",
                                  severity="FATAL")
                await writer.start_tls(self.ssl)
                continue
            if code == messages.CANCEL_REQUEST:
                self.cancel(body.int32(), body.int32())
                return None
            break
        if code >> 16 != 3:
            raise PgError("0A000", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}",
                          severity="FATAL")
        startup = _startup_params(body)
        if writer in self._starting:  # logging in: newcomers take a silent one's place first
            self._starting[writer] = True
        # Protocol options (`_pq_.`) are none of the session's settings; a client that
        # asked for any, or for a newer 3.x, is told 3.0 and none (PostgreSQL's answer).
        options = [key for key in startup if key.startswith("_pq_.")]
        for key in options:
            del startup[key]
        if code != messages.PROTOCOL_3 or options:
            writer.write(messages.negotiate_protocol(options))
        _refuse_replication(startup.get("replication"))
        user = startup.get("user", "")
        if not user:
            raise PgError("28000", "no PostgreSQL user name specified in startup packet",
                          severity="FATAL")
        session = await self._authenticate(reader, writer, user)
        assert session.user_id is not None
        self._starting.pop(writer, None)  # logged in: no newcomer takes its place now
        self._admit(writer, holder(session))
        try:  # PostgreSQL, too, refuses a start-up setting it cannot take only now
            settings = chatter.Settings(session.user_id, startup, session.is_admin, session)
        except PgError as exc:
            raise PgError(exc.code, exc.message, severity="FATAL") from None
        pid = secrets.randbits(31) or 1
        while pid in self.connections:
            pid = secrets.randbits(31) or 1
        secret = secrets.randbits(31)
        writer.write(messages.AUTH_OK)
        for name, value in settings.reported().items():
            writer.write(messages.parameter_status(name, value))
        writer.write(messages.backend_key(pid, secret))
        writer.write(messages.ready(b"I"))
        await writer.drain()
        info = SessionInfo(session.user_id, pid, session.namespace, settings.values,
                                     self.cfg.host, self.port)
        conn = Connection(self.cairn, self.catalog, reader, writer, session, settings, info)
        conn.portals.rows = Rows(self.portal_rows, conn.tally.who)
        settings.session = conn.session  # the connection's own copy follows search_path & co.
        return conn, pid, secret

    async def _cancel_only(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        """Every place is held by a logged-in connection: `writer` is served a
        CancelRequest only (FATAL 53300 otherwise). Refused at once, a client
        could not cancel its own runaway query on a full listener. It holds
        no place (a newcomer does not take it for a connection's)."""
        self._clients.discard(writer)
        self._starting.pop(writer, None)
        self._spare[writer] = None
        if len(self._spare) > CANCEL_SPARE:
            oldest = next(iter(self._spare))
            del self._spare[oldest]
            oldest.close()
        try:
            code, body = await asyncio.wait_for(self._first_packet(reader, writer), CANCEL_WAIT)
        except TimeoutError:
            code, body = 0, None
        if code == messages.CANCEL_REQUEST and body is not None:
            self.cancel(body.int32(), body.int32())
            return
        raise PgError("53300", "sorry, too many clients already", severity="FATAL")

    async def _first_packet(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> tuple[int, Any]:
        """The first start-up packet past an SSLRequest (refused: 'N') or a
        GSSENCRequest."""
        for _ in range(3):
            code, body = await messages.read_startup(reader)
            if code in (messages.SSL_REQUEST, messages.GSSENC_REQUEST):
                writer.write(b"N")
                continue
            return code, body
        return 0, None

    def _make_room(self, writer: asyncio.StreamWriter) -> bool:
        """Every place is taken and `writer` is one too many: close the oldest
        connection that has not logged in yet (FATAL 53300), if there is one
        but `writer`: one that has not sent its start-up packet first. False if
        every other connection has logged in. Oldest first alone, a flood of
        silent sockets (~360 a second) closed admins in the middle of their
        SCRAM exchange (7 logins of 182 failed)."""
        waiting = [w for w in self._starting if w is not writer]
        oldest = next((w for w in waiting if not self._starting[w]),
                      waiting[0] if waiting else None)
        if oldest is None:
            return False
        del self._starting[oldest]
        self._clients.discard(oldest)
        with contextlib.suppress(Exception):  # it may have gone meanwhile
            oldest.write(messages.error(
                "FATAL", "53300", "sorry, too many clients already: this connection had not "
                "logged in when a newer one needed its place"))
        oldest.close()  # its task ends at the closed socket, in its own time
        if oldest.get_extra_info("ssl_object") is not None:
            # TLS's close waits up to 30 s (asyncio's ssl_shutdown_timeout) for a
            # close_notify a silent peer never sends: 500 TLS sockets held 500
            # descriptors for 200 places, and a flood ran the server out of them.
            oldest.transport.abort()
        return True

    def _admit(self, writer: asyncio.StreamWriter, who: str | None) -> None:
        """A role user `who` holds at most a quarter of the connections
        (budget.SHARE), and role users together all but ADMIN_RESERVED of
        them: one role user's 200 idle logged-in connections locked every
        other user and the admins out for as long as it kept them. FATAL 53300
        otherwise, as PostgreSQL's "too many connections for role"."""
        if who is None:
            return
        limit = self.max_clients()
        share, together = shares(limit)
        mine = sum(1 for w in self._role_users.values() if w == who)
        if mine >= share:
            raise PgError("53300", f'too many connections for user "{who}": it holds {mine}, '
                          f"its share (a quarter) of the {limit} this server takes",
                          severity="FATAL")
        if len(self._role_users) >= together:
            raise PgError("53300", "remaining connection slots are reserved for admins",
                          severity="FATAL")
        self._role_users[writer] = who

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            user: str) -> Session:
        if self.verifier is None:
            if not USER_ID.match(user):
                raise PgError("28000", "user names are 1-128 characters of letters, digits "
                                       "and _ . @ : + -", severity="FATAL")
            return Session(user_id=user, role="admin")
        failed = PgError("28P01", f'password authentication failed for user "{user[:64]}"',
                         severity="FATAL")
        exchange = scram.Exchange(self.verifier)
        writer.write(messages.auth_request(10, messages.cstr(scram.MECHANISM) + b"\x00"))
        await writer.drain()
        try:
            body = await _password_message(reader)
            if body.cstring() != scram.MECHANISM:
                raise failed
            length = body.int32()
            first = body.take(length) if length >= 0 else b""
            writer.write(messages.auth_request(11, exchange.first(first)))
            await writer.drain()
            body = await _password_message(reader)
            entry, final = exchange.final(body.rest())
        except scram.ScramError:
            raise failed from None
        writer.write(messages.auth_request(12, final))
        return Session(user_id=entry["user"], role=entry.get("role", "user"))


async def _password_message(reader: asyncio.StreamReader) -> messages.Payload:
    # Before authentication a client is nobody: its messages are small (a
    # 64 MB one was buffered whole, for anyone who could open a socket).
    tag, body = await messages.read_message(reader, messages.MAX_AUTH,
                                            why="before authentication")
    if tag != b"p":
        raise messages.ProtocolViolation("expected a password message")
    return body


_OFF = {"false", "off", "no", "0", "f", "n", "of", "fa", "fal", "fals"}
_ON = {"true", "on", "yes", "1", "t", "tr", "tru", "y", "ye", "database"}


def _refuse_replication(value: str | None) -> None:
    """`replication=true` or `database` (pg_basebackup, pg_receivewal, logical
    decoding clients such as Debezium) asks for a walsender, which Cairn is not:
    FATAL 0A000 before the login, as PostgreSQL refuses a replication connection
    it does not allow (accepted, the client's IDENTIFY_SYSTEM met a syntax
    error). A value that is no boolean is 22023, as PostgreSQL says."""
    if value is None or value.strip().lower() in _OFF:
        return
    if value.strip().lower() in _ON:
        raise PgError("0A000", "replication connections are not supported: Cairn is no "
                      "PostgreSQL primary (BACKUP and START ARCHIVING keep its data)",
                      severity="FATAL")
    raise PgError("22023", f'invalid value for parameter "replication": "{value[:64]}"',
                  severity="FATAL")


def _startup_params(body: messages.Payload) -> dict[str, str]:
    """The start-up packet's name/value pairs, which end with a NUL that must be
    its last byte (as PostgreSQL reads it: bytes after it, or no end, were
    taken as they came). A name given twice is refused, never one of the two
    picked: with auth.mode "none" `user` is who is calling, and a proxy in
    front that read the other one would disagree (as for HTTP headers)."""
    out: dict[str, str] = {}
    while True:
        if body.done():
            raise messages.ProtocolViolation(
                "invalid startup packet layout: expected terminator as last byte")
        key = body.cstring()
        if not key:
            break
        if key in out:
            raise messages.ProtocolViolation(
                f"startup parameter {key[:64]!r} is sent twice; send it once")
        out[key] = body.cstring()
    if not body.done():
        raise messages.ProtocolViolation(
            "invalid startup packet layout: expected terminator as last byte")
    return out


async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        await writer.drain()
    except (ConnectionError, RuntimeError):
        pass


