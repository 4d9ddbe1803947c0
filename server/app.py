"""The aiohttp application: `create_app(config)`, POST /api/sql, GET /health.

One middleware makes every error the contract's JSON; anything that is not a
`CairnError` is a bug, logged with its trace and answered as 500 INTERNAL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web

from catalog import Catalog
from catalog.errors import (
    CairnError,
    Cancelled,
    Internal,
    InvalidRequest,
    PermissionDenied,
    RequestTooLarge,
)
from storage import datadir, roots

from . import archiving, data_copy, metrics, openapi, resume, schedules, startup, tables, visibility
from .answers import Held
from .auth import authenticate, check_origin, check_reached
from .budget import holder
from .config import Config
from .executor import execute, forget_trace
from .flush_jobs import landed as landed_flush
from .jobs import JobRunner
from .pgwire import PgServer
from .queries import ROWS_ON_THE_LOOP
from .request_body import (
    CAIRN,
    BodyTimeout,
    ClientGone,
    UnreadableBody,
    body_budget,
    check_content_type,
    check_expect,
    check_framing,
    closed,
    expect_continue,
    read_sql_request,
    send_continue,
)
from .request_share import answer_and_close, check_share, count_answers, held_request
from .result import dumps_with_raw, error_body
from .state import Cairn, Session
from .threadshare import held_by
from .web import add_routes as add_web_console

log = logging.getLogger("cairn.http")

# What handle_sql learned about a request, for the metrics middleware.
SQL_TEXT: web.RequestKey[str] = web.RequestKey("sql", str)
OUTCOME: web.RequestKey[str] = web.RequestKey("outcome", str)
USER: web.RequestKey[str | None] = web.RequestKey("user", object)  # type: ignore[arg-type]
PGWIRE: web.AppKey[PgServer | None] = web.AppKey("pgwire", object)  # type: ignore[arg-type]


def took_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def error_response(error: CairnError, started: float, status: int | None = None,
                   **where: Any) -> web.Response:
    retry = getattr(error, "retry_after", None)  # a 503 that may work shortly (BodiesBusy, …)
    return web.json_response(error_body(error, took_ms(started), **where), status=status or
                             error.status, headers={"Retry-After": str(retry)} if retry else None)


@web.middleware
async def encoded_body_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """No lingering over a compressed body the answer left unread. After an
    answer, aiohttp reads and drops what is left of the body for up to 10 s
    ("lingering"), so the client can still read the answer. Over a
    `Content-Encoding` body it decompresses everything it drops, in a loop that
    does not yield: an 8 MB gzip body of zeros (8 GB decoded) sent without a
    token held the event loop for 4-6 s at a time, 10 s in all, every other
    client waiting. So when a compressed body is left unread (a 401, a 413, a
    404, a route that takes no body), the answer is sent here and the
    connection closed at once."""
    if not request.body_exists or "Content-Encoding" not in request.headers:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if request.content.is_eof():
            raise
        response = web.Response(status=exc.status, reason=exc.reason, body=exc.body,
                                headers=exc.headers)
    if not request.content.is_eof() and not response.prepared and not closed(request):
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()  # the rest is never read nor decoded
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Time every /api/sql request: count it by statement kind and outcome, and
    log it if it is slower than `[log] slow_request_seconds`."""
    if request.path != "/api/sql":
        return await handler(request)
    started = time.perf_counter()
    with request.app[CAIRN].statements.request():  # jobs' transfers give way meanwhile
        response = await handler(request)
    sql = request.get(SQL_TEXT)
    outcome = request.get(OUTCOME) or ("ok" if response.status < 400 else str(response.status))
    kind = metrics.statement_kind(sql) if sql else "none"
    request.app[CAIRN].metrics.observe_request(
        "http", kind, time.perf_counter() - started, outcome, sql=sql,
        user=request.get(USER))
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    except ClientGone as exc:  # no one to answer, and no bug: counted as CANCELLED
        forget_trace(exc)
        log.info("%s %s: %s", request.method, request.path, exc)
        return client_gone(request, started)
    except BodyTimeout as exc:
        request[OUTCOME] = exc.code
        resp = error_response(exc, started, status=408)
        resp.force_close()  # the rest of the body is never read: drop the connection
        return resp
    except UnreadableBody as exc:
        request[OUTCOME] = exc.code
        resp = error_response(exc, started)
        resp.force_close()  # where the body ends is unknown: drop the connection
        return resp
    except CairnError as exc:
        forget_trace(exc)  # the frames it passed may hold a big body (read on a thread)
        request[OUTCOME] = exc.code
        resp = error_response(exc, started)  # with Retry-After if it says when (BodiesBusy)
        if getattr(exc, "close", False):  # RequestsBusy: its place is given back at once
            return await answer_and_close(request, resp)
        return resp
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CAIRN].config.server.max_request_bytes
        request[OUTCOME] = RequestTooLarge.code
        return error_response(RequestTooLarge(
            f"request body is larger than max_request_bytes ({limit} bytes)"), started)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.status != 405 and request.path.startswith("/api"):
            request[OUTCOME] = InvalidRequest.code
            return error_response(InvalidRequest(exc.reason), started, status=exc.status)
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        request[OUTCOME] = Internal.code
        return error_response(
            Internal("internal error: this is a bug, the server log has the trace"), started)


def json_bytes(body: Any) -> bytes:
    """JSON encoded by msgspec: 25x json.dumps here (a 14 MB answer of 100,000
    rows took 0.9 s of the event loop with json.dumps). The same JSON values;
    non-ASCII text as UTF-8 rather than \\u escapes."""
    try:
        return msgspec.json.encode(body)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return dumps_with_raw(body).encode()


# Rows encoded at once: msgspec holds the GIL for a whole call, so a large answer is
# encoded (on a statement thread) a slice of rows at a time, the loop getting it between.
ROWS_PER_SLICE = 2000


def sliced_json_bytes(body: dict[str, Any]) -> bytes:
    """`json_bytes` of a success body, each result's rows a slice at a time."""
    results = []
    for result in body["results"]:
        parts = []
        for key, value in result.items():
            if key == "rows" and len(value) > ROWS_PER_SLICE:
                slices = (json_bytes(value[i:i + ROWS_PER_SLICE])[1:-1]
                          for i in range(0, len(value), ROWS_PER_SLICE))
                encoded = b"[" + b",".join(slices) + b"]"
            else:
                encoded = json_bytes(value)
            parts.append(json_bytes(key) + b":" + encoded)
        results.append(b"{" + b",".join(parts) + b"}")
    fields = [json_bytes(key) + b":" + (b"[" + b",".join(results) + b"]" if key == "results"
                                         else json_bytes(value))
              for key, value in body.items()]
    return b"{" + b",".join(fields) + b"}"


async def answer_body(cairn: Cairn, body: dict[str, Any]) -> bytes:
    """The success body: encoded here, or for a large answer on a statement
    thread a slice of rows at a time (queries.ROWS_ON_THE_LOOP)."""
    rows = sum(len(r["rows"]) for r in body["results"])
    if rows > ROWS_ON_THE_LOOP:
        return await cairn.run(sliced_json_bytes, body)
    return json_bytes(body)


SEND_CHUNK = 1 << 20  # an answer is sent this many bytes at a time
# The slowest a client may take a large answer, on average, beside send_timeout_seconds of
# slack: all of it within send_timeout_seconds + size / MIN_SEND_RATE (64 MiB: 60 + 256 s).
MIN_SEND_RATE = 256 << 10  # bytes a second


async def send_answer(request: web.Request, data: bytes, seconds: float) -> web.StreamResponse:
    """Send a success body. A small one is left to aiohttp; a large one is
    written a chunk at a time, and a client that takes none of a chunk within
    `seconds` (`send_timeout_seconds`) is disconnected: without it a client
    that never read its answer held it in memory for good (4 such clients of a
    60 MB SELECT: 600 MB, still held minutes later). Nor may the whole take
    longer than `seconds` plus its size at MIN_SEND_RATE: a client reading a
    little at a time (20 KB/s) held a 64 MiB answer ~55 minutes."""
    if closed(request):  # gone while the statement ran
        log.info("POST /api/sql: the client closed its connection before its answer was sent")
        return client_gone(request, time.perf_counter())
    if len(data) <= SEND_CHUNK or not seconds:
        return web.Response(body=data, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = len(data)
    start = 0
    try:
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        allowed = seconds + len(data) / MIN_SEND_RATE
        deadline = loop.time() + allowed
        with memoryview(data) as view:
            for start in range(0, len(data), SEND_CHUNK):
                try:
                    async with asyncio.timeout_at(min(loop.time() + seconds, deadline)):
                        await resp.write(view[start:start + SEND_CHUNK])
                except TimeoutError:
                    log.warning("a client took no part of its %d-byte answer for %g s (send_"
                                "timeout_seconds), or not all of it in %.0f s (and its size at "
                                "MIN_SEND_RATE): connection closed", len(data), seconds, allowed)
                    request.protocol.force_close()
                    return resp
        await resp.write_eof()
    except ConnectionError as exc:  # the client hung up part-way
        # aiohttp keeps the exception (its drain waiter's): its traceback
        # would keep this frame, and `data` with it, until a full collection.
        forget_trace(exc)
        log.info("POST /api/sql: the client closed its connection %d bytes into its "
                 "%d-byte answer", start, len(data))
        request[OUTCOME] = Cancelled.code
        request.protocol.force_close()
    return resp


def client_gone(request: web.Request, started: float) -> web.Response:
    """What stands for the answer to a client that hung up: never sent (aiohttp
    finds the connection closed and writes nothing), counted as CANCELLED."""
    request[OUTCOME] = Cancelled.code
    resp = error_response(Cancelled("the client closed its connection"), started)
    resp.force_close()
    return resp


async def handle_sql(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    cairn = request.app[CAIRN]
    check_origin(request, cairn.config.server)
    session = authenticate(request, cairn.config.auth)
    request[USER] = session.user_id
    with (held_request(cairn, holder(session)),  # a role user's share of the places
          body_budget(request, cairn, holder(session)),  # 503 before the body is read if no room
          held_by(session)):  # a role user's share of the statement threads (threadshare.py)
        return await _answer_sql(request, cairn, session, started)


async def _answer_sql(request: web.Request, cairn: Cairn, session: Session,
                      started: float) -> web.StreamResponse:
    sql, namespace = await read_sql_request(request, cairn,
                                            cairn.config.server.body_timeout_seconds)
    request[SQL_TEXT] = sql
    session.namespace = namespace
    session.gone = lambda: closed(request)
    # The answers counted from when each is made until sent (answers.py).
    held = Held(cairn.answers, holder(session))
    try:
        return await _answer(request, cairn, session, sql, started, held)
    finally:
        held.release()


async def _answer(request: web.Request, cairn: Cairn, session: Session, sql: str,
                  started: float, held: Held) -> web.StreamResponse:
    outcome = await execute(cairn, session, sql, held=held)
    if outcome.error is None:
        request[OUTCOME] = "ok"
        results = [r.to_json() for r in outcome.results]
        del outcome  # its rows: only the encoded answer is kept while it is sent
        took = round(took_ms(started), 3)
        data = await answer_body(cairn, {"status": "success", "results": results, "took": took})
        del results
        held.resize(len(data))  # AnswersBusy (503) if the body is more than fits
        return await send_answer(request, data, cairn.config.server.send_timeout_seconds)
    e = outcome.error
    request[OUTCOME] = e.error.code
    # A braked user's (server/duckfaults.py): its start was logged once, not each refusal.
    retry = getattr(e.error, "retry_after", None)
    if e.error.status >= 500 and not retry:  # a bug (INTERNAL), or a target not answering
        level = logging.WARNING if e.error.code == "UNAVAILABLE" else logging.ERROR
        log.log(level, "statement %s failed: %s", e.statement, e.error.message)
    body = error_body(e.error, took_ms(started), outcome.results, statement=e.statement,
                      line=e.line, column=e.column)
    return web.json_response(body, status=e.error.status, dumps=dumps_with_raw,
                             headers={"Retry-After": str(retry)} if retry else None)


async def expect_sql(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: what can be refused before the body is refused then, and the body
    never asked for (aiohttp's own handler sent `100 Continue` first, then took the whole upload
    before a 413 or a 401). The answer closes the connection: the client may send the body
    anyway."""
    started = time.perf_counter()
    cairn = request.app[CAIRN]
    try:
        check_origin(request, cairn.config.server)
        request[USER] = (session := authenticate(request, cairn.config.auth)).user_id
        check_share(cairn, holder(session))  # a role user's requests at their share: 503 now
        check_content_type(request)
        check_framing(request)
        limit = cairn.config.server.max_request_bytes
        if limit and (request.content_length or 0) > limit:
            raise RequestTooLarge(f"request body is larger than max_request_bytes ({limit} bytes)")
        check_expect(request)  # 417 INVALID_REQUEST, counted as every refusal
    except CairnError as exc:
        forget_trace(exc)
        resp = error_response(exc, started)
        resp.force_close()
        cairn.metrics.observe_request("http", "none", time.perf_counter() - started, exc.code,
                                      user=request.get(USER))
        return resp
    await send_continue(request)
    return None


async def handle_health(request: web.Request) -> web.Response:
    """200 ok; 503 while the data directory refuses writes (a full disk): reads
    still work, writes fail until it has room again (docs/http.md). Anyone may
    ask, without a token, so the reason names no server path (`<data dir>`)."""
    cairn = request.app[CAIRN]
    check_reached(request, cairn.config.server, cairn.config.auth.mode)
    if cairn.catalog.write_error is not None:
        error = await cairn.run(cairn.catalog.probe_writes)
        if error is not None:
            error = visibility.scrubber(cairn.config)(error)
            return web.json_response({"status": "unavailable", "error": error}, status=503)
    return web.json_response({"status": "ok"})


async def handle_metrics(request: web.Request) -> web.Response:
    """Prometheus text format. Auth as the API: open in mode none; in token
    mode a token with role admin (401 without a valid token, 403 for a user)."""
    cairn = request.app[CAIRN]
    check_reached(request, cairn.config.server, cairn.config.auth.mode)
    session = authenticate(request, cairn.config.auth)
    if not session.is_admin:
        raise PermissionDenied(f"/metrics needs role admin; user '{session.user_id}' has role "
                               f"{session.role}")
    body = await cairn.run(cairn.metrics.render)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def handle_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


def open_state(config: Config) -> Cairn:
    """Open the catalog and engine, and recover from a previous crash."""
    from storage.engine import Engine

    data_dir = config.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    datadir.check(data_dir)  # a lost catalog beside data files: refused, nothing swept
    datadir.make_private(data_dir, config.storage.data_dir)  # 0700, this user's alone
    roots.check_roots(config.backup.roots, config.backup_roots)  # their ways too
    catalog = Catalog(data_dir / "catalog")
    cairn = Cairn(config, catalog)
    try:
        cairn.engine = Engine(catalog, data_dir, config.storage)
        cairn.jobs = JobRunner(cairn)
        startup.register_cleanups(cairn)
        cairn.jobs.cleanups["flush"] = landed_flush
        cairn.jobs.recover()
        cairn.jobs.trim_history()
        cairn.engine.recover()
    except BaseException:
        catalog.close()
        raise
    return cairn


def close_state(cairn: Cairn) -> None:
    cairn.close()
    cairn.engine.close()
    cairn.catalog.close()


def connection_options(config: Config) -> dict[str, Any]:
    """aiohttp's per-connection settings (for `web.AppRunner` / `TestServer`): a connection idle, or
    still sending its request line and headers, past `header_timeout_seconds` (from its start or its
    previous answer) is closed. The body has its own limit (`read_body`)."""
    seconds = config.server.header_timeout_seconds
    return {"keepalive_timeout": seconds} if seconds > 0 else {}


def create_app(config: Config, cairn: Cairn | None = None) -> web.Application:
    """The app; opens its state on start-up unless `cairn` is given (tests, CLI)."""
    app = web.Application(
        middlewares=[encoded_body_middleware, metrics_middleware, error_middleware],
        client_max_size=config.server.max_request_bytes,
        handler_args={"auto_decompress": False},  # decoded once complete: body_decoding.py
    )
    count_answers(app)  # each answer on its connection (request_share: limits._Counted.idle)

    background: list[asyncio.Task[None]] = []

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        state = cairn if cairn is not None else open_state(config)
        state.jobs = state.jobs or JobRunner(state)
        app[CAIRN] = state
        await state.run(data_copy.note_copy, state.catalog, state.data_dir)
        # Archived namespaces log their changes again before any statement runs.
        await state.run(archiving.service(state).activate_all)
        state.archive_lags = archiving.service(state).lags
        pg = PgServer(state) if config.pgwire.port else None
        if pg is not None:
            try:
                await pg.start()
            except BaseException:
                await pg.close()
                await asyncio.get_running_loop().run_in_executor(None, close_state, state)
                raise
        app[PGWIRE] = pg
        background.append(asyncio.create_task(_background(state)))
        yield
        if pg is not None:
            await pg.close()
        await _stop_work(state, background)
        await asyncio.get_running_loop().run_in_executor(None, close_state, state)

    async def stopping(app: web.Application) -> None:
        # aiohttp runs this before it waits (up to its shutdown timeout) for the
        # requests in flight: a request waiting on a job that would not end (a
        # paused BACKUP) held the stop ~2 minutes, while the schedules went on
        # starting backups.
        if CAIRN in app:
            await _stop_work(app[CAIRN], background)

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(stopping)
    app.router.add_post("/api/sql", handle_sql, expect_handler=expect_sql)
    app.router.add_get("/health", handle_health, expect_handler=expect_continue)
    app.router.add_get("/metrics", handle_metrics, expect_handler=expect_continue)
    app.router.add_get("/api/openapi.json", handle_openapi, expect_handler=expect_continue)
    add_web_console(app)
    return app


async def _stop_work(cairn: Cairn, background: list[asyncio.Task[None]]) -> None:
    """The server stops: no loop starts anything more (schedules, flushes,
    archiving), and every queued, running or paused job is cancelled (a client
    waiting on one gets 409 CANCELLED)."""
    cairn.jobs.stop_accepting()
    tasks, background[:] = list(background), []
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    # The loops' gather ends as soon as one of them is cancelled, not when
    # archiving has let its cycles finish: a cycle then met the state closed
    # ("cannot schedule new futures after shutdown", a traceback in the log).
    # Beside the jobs' stop: a cycle may wait for its base backup's job.
    await asyncio.gather(archiving.service(cairn).shutdown(), cairn.jobs.shutdown())


async def _background(cairn: Cairn) -> None:
    """Server-run loops: automatic flush, scheduled backups, job history trimming,
    pending clean-ups."""
    await asyncio.gather(tables.autoflush_loop(cairn), schedules.schedule_loop(cairn),
                         cairn.jobs.trim_loop(), cairn.jobs.retry_loop(),
                         resume.expire_loop(cairn),
                         archiving.archive_loop(cairn))
