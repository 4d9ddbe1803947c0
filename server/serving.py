"""`cairn serve`: open the data directory, listen, run until SIGINT or SIGTERM
(server/cli.py hands it here)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from catalog import CatalogLocked
from catalog.diskerrors import DataDirUnavailable
from catalog.errors import CannotStart
from storage import timing
from storage.backup import copier, stoppable

from . import config as config_mod
from . import config_checks, limits, logs, secret_files


async def serve(cfg: config_mod.Config) -> None:
    from .app import PGWIRE, connection_options, create_app, open_state

    before, open_files = limits.raise_open_files()
    if open_files > before:
        logging.getLogger("cairn").info("open files: soft limit raised from %d to %d",
                                        before, open_files)
    cairn = open_state(cfg)
    families = cairn.catalog.descriptors  # each holds a descriptor (server/limits.py)
    connections = limits.Connections(
        lambda: limits.connection_limit(cfg.server.max_connections, open_files, families()),
        lambda: limits.connection_limit(limits.LINGER_MAX, open_files, families()),
        cfg.server.send_timeout_seconds)
    app = create_app(cfg, cairn)
    # Everything loaded so far (sqlglot, Lark, pyarrow, DuckDB, aiohttp) lives as
    # long as the process: keep it out of the cyclic collector, whose full passes
    # over ~100k such objects otherwise pause every request for 25-55 ms.
    gc.enable()  # off for the start-up's imports (server/cli.py)
    gc.collect()
    gc.freeze()
    # From here on every collector pass is timed (/metrics cairn_gc_pause_seconds);
    # the start-up pass above is not a request's pause.
    timing.watch_gc()
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           **connection_options(cfg))
    await runner.setup()
    listener = None
    try:
        # aiohttp's protocol for each connection, counted (server/limits.py).
        assert runner.server is not None
        listener = await asyncio.get_running_loop().create_server(
            connections.factory(runner.server), cfg.server.host, cfg.server.port,
            backlog=128, reuse_address=True)
        port = listener.sockets[0].getsockname()[1] if listener.sockets else cfg.server.port
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopped_by(sig: signal.Signals) -> None:
            cairn.jobs.stop_signal = sig.name  # what the jobs it cancels say
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped_by, sig)
        print(f"cairn listening on http://{cfg.server.host}:{port}", flush=True)
        pg = app[PGWIRE]
        if pg is not None:
            print(f"cairn listening on postgresql://{cfg.pgwire.host}:{pg.port}", flush=True)
        await stop.wait()
        logging.getLogger("cairn").info("stopping")
    finally:
        if listener is not None:
            listener.close()
        await runner.cleanup()


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run the server's coroutine on `[server] event_loop`: uvloop (libuv's
    loop; the loop's own share of a request's CPU is about a tenth less,
    docs/performance.md) or asyncio's own. Without uvloop installed (it is not
    made for Windows), asyncio's, said once in the log."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            logging.getLogger("cairn").warning(
                "[server] event_loop = \"uvloop\" but uvloop is not installed: asyncio's loop")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def _exit_past_stuck_calls() -> None:
    """The server has stopped, but calls to an object store it gave up on
    (a SHOW BACKUPS past its deadline, a killed job's read) still wait on
    their endpoints, and pyarrow's exit handler would wait for them: for as
    long as an endpoint drips or lists (a SIGTERM never ended the process).
    Everything of the server's is closed by now, so the process ends here."""
    logging.getLogger("cairn").warning(
        "%d calls to object storage are still waiting on their endpoints; "
        "exiting without waiting for them", stoppable.left_running())
    copier.close_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def serve_command(args: argparse.Namespace) -> int:
    """`cairn serve`: the exit status (2 for a bad config, 1 when it cannot start)."""
    try:
        if args.log_level is not None:
            config_checks.check_log_level(args.log_level, "--log-level")
        logs.setup("text", args.log_level or "INFO")
        cfg = config_mod.load(
            args.config, host=args.host, port=args.port, pg_port=args.pg_port,
            data_dir=args.data_dir
        )
        logs.setup(cfg.log.format, args.log_level or cfg.log.level)
        secret_files.warn_open_secrets(cfg, args.config)  # a token others read: said
        run_loop(serve(cfg), cfg.server.event_loop)
        if stoppable.left_running():
            _exit_past_stuck_calls()
    except config_mod.ConfigError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 2
    except CatalogLocked as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    except CannotStart as exc:  # a lost or damaged catalog, …
        print(f"cairn: cannot start: {exc}", file=sys.stderr)
        return 1
    except DataDirUnavailable as exc:  # a full disk, too few file handles, …
        print(f"cairn: cannot start: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cairn: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the server was up
        return 130
    return 0


