"""A pgwire catalog query (pg_catalog, information_schema, version()) is
bounded and stopped as an ordinary SELECT is. It ran under `[server]
query_timeout_seconds` alone, not the session's `statement_timeout`; a
CancelRequest did not reach it (it ran to the server's timeout); and its
clock started only once it had a statement thread, so a role user's catalog
query waited for one as long as that user's other statements held theirs.
Found by the sixteenth round's regress attacker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.pgwire.conftest import PgServer, _start

ROOT, MALLORY = "root-2c71ae", "mallory-90d4f3"
SERVER_TIMEOUT = 60  # far past every bound asserted here
CONFIG = (
    f"[server]\nblocking_threads = 4\nquery_timeout_seconds = {SERVER_TIMEOUT}\n"  # share: 1
    '[auth]\nmode = "token"\n'
    f'[[auth.tokens]]\ntoken = "{ROOT}"\nuser = "root"\nrole = "admin"\n'
    f'[[auth.tokens]]\ntoken = "{MALLORY}"\nuser = "mallory"\nrole = "user"\n'
)
# Each runs for hours unless stopped: ten trillion rows. The first is a
# catalog query (it calls version(): answered on the catalog's DuckDB).
SLOW_CATALOG = ("SELECT version(), count(*) FROM range(0, 10000000000000) a(x) "
                "WHERE x % 7 = 0")
SLOW = "SELECT count(*) FROM range(0, 10000000000000) WHERE range % 7 = 0"
BOUND = 20.0  # seconds: far more than a 1 s timeout or a cancel takes, far less than the work


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """One server for the module: each test leaves mallory's one thread free."""
    yield from _start(tmp_path_factory.mktemp("catalog_statement"), CONFIG)


def _connect(server: PgServer, who: str) -> psycopg.Connection[Any]:
    token = ROOT if who == "root" else MALLORY
    return psycopg.connect(server.dsn(who, password=token), autocommit=True)


def _failure(conn: psycopg.Connection[Any], sql: str, params: Any = None
             ) -> tuple[psycopg.Error, float]:
    started = time.monotonic()
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    return info.value, time.monotonic() - started


@pytest.mark.parametrize("who", ["root", "mallory"])
def test_statement_timeout_bounds_a_catalog_query(server: PgServer, who: str) -> None:
    with _connect(server, who) as conn:
        conn.execute("SET statement_timeout = 1000")
        ordinary, _ = _failure(conn, SLOW)
        assert ordinary.sqlstate == "57014", ordinary
        simple, took = _failure(conn, SLOW_CATALOG)
        assert simple.sqlstate == "57014", simple
        assert took < BOUND
        assert str(simple) == str(ordinary)  # "query cancelled: it ran longer than 1.0 s"
        # The extended protocol (Parse, Bind, Describe, Execute) the same.
        extended, took = _failure(conn, SLOW_CATALOG.replace("%", "%%") + " AND x > %s", (0,))
        assert extended.sqlstate == "57014" and str(extended) == str(ordinary), extended
        assert took < BOUND
        conn.execute("RESET statement_timeout")
        assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL")


def _cancelled(conn: psycopg.Connection[Any], sql: str) -> tuple[BaseException | None, float]:
    """Run `sql`, cancelling it until it ends (a cancel that comes before the
    server reads the query does nothing); what it raised and how long it took."""
    got: list[BaseException | None] = []

    def run() -> None:
        try:
            conn.execute(sql)
            got.append(None)
        except psycopg.Error as exc:
            got.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    runner.start()
    while runner.is_alive() and time.monotonic() - started < BOUND:
        conn.cancel()
        runner.join(0.2)
    took = time.monotonic() - started
    assert not runner.is_alive(), f"not stopped by a cancel in {took:.1f} s"
    return got[0], took


@pytest.mark.parametrize("who", ["root", "mallory"])
def test_a_cancel_stops_a_catalog_query(server: PgServer, who: str) -> None:
    with _connect(server, who) as conn:
        exc, took = _cancelled(conn, SLOW_CATALOG)
        assert isinstance(exc, psycopg.errors.QueryCanceled), exc
        assert took < BOUND
        # Its DuckDB query stopped (it was not just abandoned): mallory's one
        # statement thread (blocking_threads 4) is free for her next statement.
        conn.execute(f"SET statement_timeout = {int(BOUND * 1000)}")
        assert conn.execute("SELECT count(*) FROM range(5)").fetchone() == (5,)
        assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL")


def test_a_catalog_querys_wait_for_a_thread_counts_in_its_timeout(server: PgServer) -> None:
    holder = _connect(server, "mallory")
    slow_done: list[BaseException | None] = []

    def hold() -> None:
        try:
            holder.execute(SLOW)
            slow_done.append(None)
        except psycopg.Error as exc:
            slow_done.append(exc)

    runner = threading.Thread(target=hold, daemon=True)
    runner.start()
    try:
        with _connect(server, "mallory") as conn:
            # Until mallory's one thread is certainly held by SLOW: an ordinary
            # statement of hers is refused for want of a thread.
            conn.execute("SET statement_timeout = 300")
            deadline = time.monotonic() + BOUND
            while True:
                try:
                    conn.execute("SELECT count(*) FROM range(5)")
                except psycopg.errors.QueryCanceled as exc:
                    assert "for a statement thread" in str(exc), exc
                    break
                assert time.monotonic() < deadline, "SLOW never took the thread"
                time.sleep(0.05)
            assert not slow_done, slow_done
            conn.execute("SET statement_timeout = 1000")
            for sql in ("SELECT version()", "SELECT relname FROM pg_catalog.pg_class"):
                exc, took = _failure(conn, sql)
                assert isinstance(exc, psycopg.errors.QueryCanceled), exc
                assert "it waited its query timeout (1 s) for a statement thread" in str(exc)
                assert took < BOUND
    finally:
        holder.cancel()
        runner.join(BOUND)
        holder.close()
