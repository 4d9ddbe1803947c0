"""One PostgreSQL client after start-up: the simple and the extended query
protocol, driving Cairn's executor (the same entry point as POST /api/sql).

Errors in the extended protocol put the connection into "skip until Sync", as
PostgreSQL does; every error leaves the connection usable. While a statement
runs, its jobs report progress as NoticeResponse messages. A CancelRequest kills them (or
interrupts the statement); nothing after it up to Sync or the Query's end starts (cancel)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from catalog import Namespace
from sqlgrammar.errors import SqlSyntaxError
from sqlgrammar.splitter import split_script

from ..answers import Held
from ..executor import PARSE_ON_THREAD_CHARS, execute
from ..metrics import statement_kind
from ..session import Session
from ..state import Cairn
from . import catalogfaults, chatter, describe, messages, params, pgcatalog, transactions
from .cancelling import Cancellable
from .errors import PgError, contract_code, position
from .kept import Kept, Portals, Tally, refuse_another_pending
from .results import Reply, data_rows, description, formats_for, from_result
from .session_functions import SessionInfo
from .statements import WRITE, Portal, Prepared, bind_work, parameter_types, read_bind, split
from .statements import text as query_text
from .transactions import TransactionError

log = logging.getLogger("cairn.pgwire")

FLUSH_ROWS = 1000  # drain the socket every so many DataRows
YIELD_EVERY = 32  # messages handled back to back before other clients get the loop
SIMPLE = (b"Q", b"F")  # answered with ReadyForQuery, an error too (no skipping to Sync)


class Connection(Cancellable):
    def __init__(self, cairn: Cairn, catalog: pgcatalog.CatalogEngine,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 session: Session, settings: chatter.Settings, info: SessionInfo) -> None:
        self.cairn, self.catalog, self.settings, self.info = cairn, catalog, settings, info
        self.reader, self.writer = reader, writer
        self.session = dataclasses.replace(session, on_job=self._job_started)
        self.tx = b"I"
        self.savepoints: list[str] = []  # the transaction block's (transactions.py)
        self.limit = cairn.config.server.max_request_bytes
        self.tally = Tally(self.limit, cairn.prepared, session)  # kept texts' bytes (kept.py)
        self.statements: Kept[Prepared] = Kept(self.tally, Prepared.size)
        self.portals: Portals[Portal] = Portals(  # rows: PgServer sets
            self.tally, Portal.size, gone=lambda p: self.held.let_go(p.reply))
        self.held = Held(cairn.answers, self.tally.who)  # answers not yet sent (answers.py)
        self.skipping = self.busy = self.cancelled = self.waiting = False  # see cancel()
        self.jobs: set[str] = set()
        self.stopped: set[str] = set()  # jobs a cancel stopped before they began
        self.running: asyncio.Future[Any] | None = None
        self.send_timeout = cairn.config.server.send_timeout_seconds
        self.high_water = writer.transport.get_write_buffer_limits()[1]

    # --- the loop ---------------------------------------------------------------------

    async def serve(self) -> None:
        handlers: dict[bytes, Callable[[messages.Payload], Awaitable[None]]] = {
            b"Q": self._query, b"P": self._parse, b"B": self._bind, b"D": self._describe,
            b"E": self._execute, b"C": self._close, b"H": self._flush, b"S": self._sync,
            b"F": self._function_call,
        }
        handled = 0
        while True:
            # Reading buffered bytes does not suspend: a flood of Sync had the loop.
            handled += 1
            if handled % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            # Nothing more is read while the replies written so far wait past the
            # high-water mark: a client that read no 1 MB ParameterStatus of its
            # prepared 1 MB SETs grew the server by 800 MB for the 23 KB it sent.
            await self._drain()
            self.waiting = True  # suspended here only for the client's next bytes
            tag, body = await messages.read_message(self.reader, self.limit, self.cairn.inflight,
                self.cairn.config.server.body_timeout_seconds, who=self.tally.who,
                tags=messages.FRONTEND)
            self.waiting = False
            if tag == b"X":
                return
            handler = handlers.get(tag)
            if handler is None:  # COPY data from a client that was never asked (FRONTEND)
                continue
            self.busy = True  # until the ReadyForQuery this message leads to (_ready)
            if self.skipping and tag != b"S":  # a Query too, as PostgreSQL (it ran: a write)
                continue
            try:
                if tag in (b"P", b"B", b"D"):  # Close, Flush, Sync are no statement (Execute:
                    self._check_cancelled()  # _execute; one that has run is answered)
                await handler(body)
            except PgError as exc:
                self._fail(tag, exc)
                if tag in SIMPLE:
                    await self._drain()
            except messages.ProtocolViolation as exc:  # a malformed message: its length said
                self._fail(tag, PgError("08P01", str(exc)))  # where it ends, so nothing is
                if tag in SIMPLE:  # misread: ERROR, as PostgreSQL's (until 2026-12-08 FATAL)
                    await self._drain()
            except ConnectionError:  # it left
                raise
            except Exception:  # a bug: the statement fails, the connection lives on
                if self.writer.is_closing():  # a write after the client left (uvloop raises)
                    raise messages.Closed() from None
                log.exception("pgwire: internal error on message %r", tag)
                self._fail(tag, PgError("XX000", "internal error: this is a bug, the server "
                                                 "log has the trace"))

    async def _drain(self) -> None:
        """Wait while the replies not yet sent are past the transport's high-water mark. A client
        that leaves them unread for `[server] send_timeout_seconds` is disconnected, and what it
        was sent is freed (an unread answer was held for as long as the connection lived)."""
        transport = self.writer.transport
        if transport.get_write_buffer_size() <= self.high_water and not transport.is_closing():
            return  # as drain() would, without a timer per message
        try:
            async with asyncio.timeout(self.send_timeout or None):
                await self.writer.drain()
        except TimeoutError:
            log.warning("pgwire: a client left %d bytes of replies unread for %g s "
                        "(send_timeout_seconds): connection closed",
                        transport.get_write_buffer_size(), self.send_timeout)
            transport.abort()  # close() would keep them until sent
            raise ConnectionAbortedError("send timeout") from None

    def _fail(self, tag: bytes, exc: PgError) -> None:
        self.writer.write(exc.to_bytes())
        if tag in SIMPLE:
            self._ready()
        else:
            self.skipping = True

    def _ready(self) -> None:
        """ReadyForQuery: the connection is idle, a cancel that came before is spent."""
        self.writer.write(messages.ready(self.tx))
        self.busy = self.cancelled = False

    # --- simple query -----------------------------------------------------------------

    async def _query(self, body: messages.Payload) -> None:
        sql = query_text(body)
        body.end()
        ran = False
        chunks = split_script(sql)
        # A big text is split on a statement thread (the splitter's Python gives
        # the GIL back; 0.45 s on the event loop for a 2 MB INSERT at load 11).
        big = len(sql) > PARSE_ON_THREAD_CHARS
        try:
            while True:
                chunk = (await self.cairn.run(next, chunks, None)) if big else next(chunks, None)
                if chunk is None:  # a cancel after the last statement: it is answered
                    break
                self._check_cancelled()  # one before this statement: it does not start
                ran = True
                code = transactions.edged(sql, chunk.start, chunk.text, chunk.code)  # \u00a0
                reply = await self._run(chunk.text, code, chunk.start, chunk.comments)
                try:
                    if reply.columns is not None:
                        fmts = [0] * len(reply.columns)
                        self.writer.write(description(reply.columns, fmts))
                        await self._rows(reply.rows, [o for _, o in reply.columns], fmts)
                finally:
                    self.held.let_go(reply)
                self.writer.write(messages.command_complete(reply.tag))
        except SqlSyntaxError as exc:
            raise PgError("42601", exc.message, position(sql, exc.line, exc.column)) from None
        if not ran:
            self.writer.write(messages.EMPTY_QUERY)
        self._ready()
        await self._drain()

    async def _rows(self, rows: list[list[Any]], oids: list[int], fmts: list[int]) -> None:
        for i in range(0, len(rows), FLUSH_ROWS):
            self.writer.writelines(data_rows(rows[i:i + FLUSH_ROWS], oids, fmts))
            await self._drain()
            if i + FLUSH_ROWS < len(rows):
                await asyncio.sleep(0)  # drain() does not yield while the client keeps up

    # --- one statement ------------------------------------------------------------------

    def _search(self) -> None:
        """Unqualified names mean search_path's first namespace that exists at the
        time of the statement, as PostgreSQL's (until 2026-12-08 its first named)."""
        catalog = self.cairn.catalog
        self.session.namespace = chatter.first_existing(
            self.settings.namespaces, lambda n: catalog.get(Namespace, n) is not None,
            lambda: {k.decode() for k, _ in catalog.scan_raw(Namespace.FAMILY)})

    async def _run(self, text: str, code: str, offset: int,
                   comments: tuple[tuple[int, int], ...] = ()) -> Reply:
        """Run one statement's text (`code`: comments blanked; `comments`: where)."""
        self._search()
        try:
            answer = chatter.answer(code, self.settings, self.tx, self.savepoints)
        except TransactionError as exc:  # PREPARE TRANSACTION in a block: the block ends too
            self._status(exc.tx)
            raise
        if answer is not None:
            return self._chatter(answer, code)
        # A catalog query is a query: an INSERT, UPDATE or DELETE is not scanned for one.
        catalog = not WRITE.match(code) and pgcatalog.hinted(code)
        tree = await self._off_loop(text, pgcatalog.parse, text, comments) if catalog else None
        if tree is not None:  # run as a SELECT is: timed, cancelled (catalogfaults.run)
            columns, rows = await self._stoppable(catalogfaults.run(self, text, tree))
            return self._chatter(self.settings.ran(columns, rows, self.info.pending), code)
        return await self._cairn(text, offset)

    def _chatter(self, answer: chatter.Answer, code: str) -> Reply:
        gone = chatter.deallocated(code)
        if gone and gone not in self.statements:
            raise PgError("26000", f'prepared statement "{gone}" does not exist')
        for name, value in answer.changed.items():
            self.writer.write(messages.parameter_status(name, value))
        self._status(answer.tx)
        if answer.notice:
            self.writer.write(messages.notice(answer.notice, "WARNING", answer.notice_code))
        if gone == "":
            self.statements.clear()
        elif gone is not None:
            self.statements.pop(gone, None)
        return Reply(answer.tag, answer.columns or None, answer.rows)

    def _status(self, tx: bytes | None) -> None:
        """The transaction status from now on (None: as it is)."""
        if tx is not None:
            if tx == b"I" and self.tx != b"I":
                self.portals.clear()  # a transaction's portals end with it
                self.savepoints.clear()
            self.tx = tx

    async def _off_loop(self, text: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), on a statement thread when `text` is big, as the simple query's split is
        (sqlglot or the splitter of a 10 MB text on the event loop held all clients for seconds)."""
        if len(text) > PARSE_ON_THREAD_CHARS:
            return await self.cairn.run(fn, *args)
        return fn(*args)

    async def _cairn(self, text: str, offset: int) -> Reply:
        started, status = time.perf_counter(), "CANCELLED"
        try:
            with self.cairn.statements.request():  # jobs' transfers give way meanwhile
                reply = await self._cairn_statement(text, offset)
            status = "ok"
            return reply
        except PgError as exc:
            status = contract_code(exc)  # INTERNAL only for XX000, a bug
            raise
        finally:
            self.cairn.metrics.observe_request(
                "pgwire", statement_kind(text), time.perf_counter() - started, status,
                sql=text, user=self.session.user_id)

    async def _cairn_statement(self, text: str, offset: int) -> Reply:
        before = self.held.n
        try:
            outcome = await self._stoppable(execute(self.cairn, self.session, text, held=self.held))
            if outcome.error is not None:
                err, pos = outcome.error.error, None
                if err.code == "PARSE_ERROR":
                    where = position(text, outcome.error.line, outcome.error.column)
                    pos = offset + where if where is not None else None
                raise PgError.of(err, pos)
            if not outcome.results:
                raise PgError("XX000", "the statement gave no result")
            reply = from_result(text, outcome.results[-1], outcome.statement)
        except BaseException:
            self.held.give(self.held.n - before)  # its answer, if it had one, is gone
            raise
        reply.held = self.held.n - before  # until the reply is let go (Held.let_go)
        return reply

    # --- extended query -----------------------------------------------------------------

    async def _parse(self, body: messages.Payload) -> None:
        name = body.cstring()
        sql = query_text(body)
        declared = [body.uint32() for _ in range(body.uint16())]
        body.end()
        if not name:  # as PostgreSQL: gone even if this Parse fails (a Bind ran the old one)
            self.statements.pop("", None)
        try:
            chunks = await self._off_loop(sql, split, sql)
        except SqlSyntaxError as exc:
            raise PgError("42601", exc.message, position(sql, exc.line, exc.column)) from None
        if len(chunks) > 1:
            raise PgError("42601", "cannot insert multiple commands into a prepared statement")
        text = chunks[0].text if chunks else ""
        if chunks:  # `COMMIT\u00a0`: 42601, as PostgreSQL's lexer reads it
            transactions.edged(sql, chunks[0].start, text, chunks[0].code)
        try:
            spots = await self._off_loop(text, params.placeholders, text)
        except params.PlaceholderError as exc:
            raise PgError(getattr(exc, "code", "42P02"), str(exc),
                          getattr(exc, "position", None)) from None
        if name and name in self.statements:
            raise PgError("42P05", f'prepared statement "{name}" already exists')
        count = max((n for _, _, n in spots), default=0)
        self._search()
        oids, targets, texts = await parameter_types(self.cairn, self.session.namespace, text,
                                                     declared, count, self._off_loop)
        self.statements[name] = Prepared(text, oids, spots, targets=targets, texts=texts)
        self.writer.write(messages.PARSE_COMPLETE)

    async def _bind(self, body: messages.Payload) -> None:
        portal_name = body.cstring()
        name = body.cstring()
        prepared = self.statements.get(name)
        if prepared is None:
            raise PgError("26000", f'prepared statement "{name}" does not exist')
        if portal_name and portal_name in self.portals:  # as PostgreSQL (it was replaced)
            raise PgError("42P03", f'portal "{portal_name}" already exists')
        # A big Bind is read and its parameters written in on a statement thread:
        # big values (a 9 MB one stopped every client for seconds), or many
        # parameters, NULL or not (statements.bind_work).
        if bind_work(prepared, body) > PARSE_ON_THREAD_CHARS:
            rcodes, sql = await self.cairn.run(read_bind, prepared, body)
        else:
            rcodes, sql = read_bind(prepared, body)
        self.portals[portal_name] = Portal(prepared, sql, rcodes)
        self.writer.write(messages.BIND_COMPLETE)

    async def _describe(self, body: messages.Payload) -> None:
        kind, name = body.byte(), body.cstring()
        body.end()
        if kind == b"S":
            prepared = self.statements.get(name)
            if prepared is None:
                raise PgError("26000", f'prepared statement "{name}" does not exist')
            self.writer.write(messages.parameter_description(prepared.oids))
            before, prepared.described = prepared.described, await self._shape(prepared)
            self.statements.recount(name, lambda: setattr(prepared, "described", before))
            if prepared.described is None:
                self.writer.write(messages.NO_DATA)
            else:
                self.writer.write(description(prepared.described, [0] * len(prepared.described)))
            await self._drain()  # 128 KB for `$32767`: a client that never reads
            return
        if kind != b"P":
            raise PgError("08P01", f"invalid DESCRIBE message subtype {kind[0]}")
        portal = self._portal(name)
        if await describe.runs_first(portal.prepared, portal.sql, self._off_loop):
            cols = (await self._answer(name, portal, -1)).columns
        else:  # run at Execute only: not even a WITH … INSERT, a DROP or a BACKUP runs here
            cols = describe.unrun_columns(portal.sql)
        portal.described = True
        if cols is None:
            self.writer.write(messages.NO_DATA)
        else:
            self.writer.write(description(cols, formats_for(portal.formats, len(cols))))
        await self._drain()

    async def _shape(self, prepared: Prepared) -> list[tuple[str, int]] | None:
        return await describe.shape(prepared, self.settings, self.tx, self._off_loop,
                                    self._probe)

    async def _probe(self, probe: str) -> Reply:  # run for its columns: no row is kept
        self.held.let_go(reply := await self._run(probe, probe, 0))
        return reply

    async def _answer(self, name: str, portal: Portal, limit: int = 0) -> Reply:
        """The portal's answer, run on first use: by Describe (`limit` -1) or
        Execute (its row limit, 0 for all: then nothing is kept)."""
        if portal.reply is None:
            if limit != 0:
                refuse_another_pending(len(self.portals.pending))
            try:
                portal.reply = await self._run_portal(portal)
            except Exception:
                self.portals.pop(name, None)  # as in PostgreSQL, where its error ends it
                raise
            self.portals.recount(name, lambda: self.portals.pop(name))  # its columns
            return self.portals.keep(name, portal, limit)  # its rows unsent, counted (kept.py)
        return portal.reply

    def _portal(self, name: str) -> Portal:
        portal = self.portals.get(name)
        if portal is None:
            raise PgError("34000", f'portal "{name}" does not exist')
        return portal

    async def _run_portal(self, portal: Portal) -> Reply:
        try:
            chunks = await self._off_loop(portal.sql, split, portal.sql)
        except SqlSyntaxError as exc:
            where = position(portal.sql, exc.line, exc.column)
            raise PgError("42601", exc.message, where) from None
        if not chunks:
            return Reply("")
        return await self._run(chunks[0].text, chunks[0].code, 0, chunks[0].comments)

    async def _execute(self, body: messages.Payload) -> None:
        portal_name, limit = body.cstring(), body.int32()
        body.end()
        portal = self._portal(portal_name)
        if portal.done:  # a statement of no rows that ran: its tag again was one more INSERT
            raise PgError("55000", f'portal "{portal_name}" cannot be run')  # PostgreSQL's too
        if portal.reply is None or portal.sent:  # Describe ran it: answered as it went
            self._check_cancelled()
        reply = await self._answer(portal_name, portal, limit)
        if not reply.tag:
            self.writer.write(messages.EMPTY_QUERY)
            return
        tag, portal.done = reply.tag, reply.columns is None
        if reply.columns is not None:
            try:
                sent = await self._send(portal_name, portal, reply, limit)
            except Exception:  # as in PostgreSQL, where its error ends it: the portal is gone
                self.portals.pop(portal_name, None)  # (its next Execute was the rest as whole)
                raise
            if sent is None:
                self.writer.write(messages.PORTAL_SUSPENDED)
                return
            if tag.startswith("SELECT "):  # as PostgreSQL: the rows this Execute sent
                tag = f"SELECT {sent}"
        self.writer.write(messages.command_complete(tag))

    async def _send(self, portal_name: str, portal: Portal, reply: Reply, limit: int
                    ) -> int | None:
        """The portal's next rows (up to `limit`, 0 for all); how many, or
        None if some are left (suspended)."""
        columns = reply.columns or []
        promised = portal.prepared.described
        if not portal.described and promised is not None:  # as Describe(S) said, or 0A000
            if len(promised) != len(columns) or any(
                    p[1] != c[1] for p, c in zip(promised, columns, strict=True)) and (
                    not portal.prepared.spots  # a $n's column keeps its declared type:
                    or await self._shape(portal.prepared) != promised):  # so describe again
                raise PgError("0A000", "cached plan must not change result type")
            columns = promised
        oids = [o for _, o in columns]
        fmts = formats_for(portal.formats, len(columns))
        end = len(reply.rows) if limit <= 0 else min(len(reply.rows), portal.sent + limit)
        await self._rows(reply.rows[portal.sent:end], oids, fmts)  # 22003: the portal goes
        sent, portal.sent = end - portal.sent, end
        if end < len(reply.rows):
            return None
        if reply.rows:  # all sent: a portal read to its end keeps no rows
            portal.reply, portal.sent = dataclasses.replace(reply, rows=[], held=0), 0
            self.held.let_go(reply)
        self.portals.sent(portal_name)
        return sent

    async def _close(self, body: messages.Payload) -> None:
        kind, name = body.byte(), body.cstring()
        body.end()
        if kind == b"S":
            self.statements.pop(name, None)
        elif kind == b"P":
            self.portals.pop(name, None)
        else:
            raise PgError("08P01", f"invalid CLOSE message subtype {kind[0]}")
        self.writer.write(messages.CLOSE_COMPLETE)

    async def _function_call(self, body: messages.Payload) -> None:
        """The fast path (libpq's PQfn): answered, as PostgreSQL answers a
        function it does not have, with an error and ReadyForQuery. A malformed
        one too, as PostgreSQL's: its length said where it ends, so nothing of it
        is left to misread (until 2026-12-08 it was FATAL and the connection closed)."""
        try:
            _, formats = messages.function_call(body)
        except messages.ProtocolViolation as exc:
            raise PgError("08P01", str(exc)) from None
        bad = next((f for f in formats if f not in (0, 1)), None)
        if bad is not None:  # PostgreSQL's code and words
            raise PgError("22023", f"unsupported format code: {bad}")
        raise PgError("0A000", "fast-path function calls are not supported")

    async def _flush(self, body: messages.Payload) -> None:
        body.end()
        await self._drain()

    async def _sync(self, body: messages.Payload) -> None:
        self.skipping = False
        try:
            body.end()
        except messages.ProtocolViolation as exc:  # as PostgreSQL: ERROR, and still a Sync
            self.writer.write(PgError("08P01", str(exc)).to_bytes())
        self.portals.synced(self.tx)
        self._ready()
        await self._drain()
