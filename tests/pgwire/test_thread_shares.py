"""A role user's share of the statement threads (server/threadshare.py).

One role user's slow queries, each inside `query_timeout_seconds`, held every
`[server] blocking_threads` slot, and everything else that needed one waited
until they ended: GET /metrics 0.00 s idle, 22-56 s then (Prometheus' scrape
timed out), an admin's SELECT 1 and the console's polls the same. Now that
user's statements hold one share of the threads and wait for their own;
/metrics, admins and other role users are answered meanwhile."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pgwire.conftest import PgServer, _start

ROOT, MALLORY, BOB = "root-5a1f09", "mallory-8c2e47", "bob-3d9b61"
CONFIG = (
    "[server]\nblocking_threads = 4\nquery_timeout_seconds = 300\n"  # a share: 1 thread
    '[auth]\nmode = "token"\n'
    f'[[auth.tokens]]\ntoken = "{ROOT}"\nuser = "root"\nrole = "admin"\n'
    f'[[auth.tokens]]\ntoken = "{MALLORY}"\nuser = "mallory"\nrole = "user"\n'
    f'[[auth.tokens]]\ntoken = "{BOB}"\nuser = "bob"\nrole = "user"\n'
)
# Runs until cancelled (its query timeout is minutes away).
SLOW = "SELECT count(*) FROM range(0, 1000000000000) WHERE range % 7 = 0"
PROBE_SECONDS = 20.0  # far less than the slow queries run, far more than an answer takes


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PgServer]:
    yield from _start(tmp_path, CONFIG)


def _get(url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=PROBE_SECONDS) as resp:
            data = resp.read()
            return resp.status, json.loads(data) if body is not None else data
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:  # a timeout: the probe was not answered
        return 0, str(exc)


def _sql(pg: PgServer, token: str, text: str) -> tuple[int, Any]:
    return _get(pg.proc.url + "/api/sql", token, {"sql": text})


def test_one_role_users_slow_queries_leave_the_server_answering(server: PgServer) -> None:
    conns = [psycopg.connect(server.dsn("mallory", password=MALLORY), autocommit=True)
             for _ in range(4)]  # as many as there are statement threads
    slow_ends: list[tuple[float, str | None]] = []

    def slow(conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute(SLOW)
            slow_ends.append((time.monotonic(), None))
        except psycopg.Error as exc:
            slow_ends.append((time.monotonic(), exc.sqlstate))

    runners = [threading.Thread(target=slow, args=(c,), daemon=True) for c in conns]
    try:
        for t in runners:
            t.start()
        time.sleep(1.0)  # setup: the four reach the server (before, they took every thread)
        probes: dict[str, tuple[int, Any, float]] = {}

        def probe(name: str, fn: Any) -> None:
            status, body = fn()
            probes[name] = (status, body, time.monotonic())

        checks = {
            "metrics": lambda: _get(server.proc.url + "/metrics", ROOT),
            "admin": lambda: _sql(server, ROOT, "SELECT count(*) AS n FROM range(3)"),
            "admin jobs poll": lambda: _sql(server, ROOT, "SELECT job_id FROM system.jobs"),
            "bob": lambda: _sql(server, BOB, "SELECT count(*) AS n FROM range(3)"),
        }
        threads = [threading.Thread(target=probe, args=item) for item in checks.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not slow_ends, slow_ends  # all answered while mallory's four still run
        for name, (status, body, _) in probes.items():
            assert status == 200, (name, body)
        assert b"cairn_start_time_seconds" in probes["metrics"][1]
        assert probes["bob"][1]["results"][0]["rows"] == [{"n": 3}]

        # Mallory's next statement waits for her own thread, up to its timeout.
        with psycopg.connect(server.dsn("mallory", password=MALLORY), autocommit=True) as c:
            c.execute("SET statement_timeout = 500")
            with pytest.raises(psycopg.errors.QueryCanceled, match="for a statement thread"):
                c.execute("SELECT count(*) FROM range(5)")
        # One without a near timeout is not refused: it runs once hers are done.
        extra: list[tuple[int, Any]] = []
        waiter = threading.Thread(target=lambda: extra.append(
            _sql(server, MALLORY, "SELECT count(*) AS n FROM range(5)")))
        waiter.start()
        for c in conns:
            c.cancel()
        waiter.join()
        for t in runners:
            t.join(30)
        assert sorted(state for _, state in slow_ends) == ["57014"] * 4, slow_ends
        assert extra and extra[0][0] == 200, extra
        assert extra[0][1]["results"][0]["rows"] == [{"n": 5}]
    finally:
        for c in conns:
            c.cancel()
            c.close()


def _waiters(pg: PgServer) -> float:
    status, body = _get(pg.proc.url + "/metrics", ROOT)
    assert status == 200, body
    line = next(line for line in body.decode().splitlines()
                if line.startswith("cairn_statement_thread_waiters "))
    return float(line.split()[1])


def test_a_cancel_stops_a_statement_waiting_for_its_thread(server: PgServer) -> None:
    """A CancelRequest of a statement that waits for its user's thread ends the
    wait itself: the statement leaves the queue and is answered 57014 "query
    cancelled at the client's request". Until 2026-12-08 the cancel did not
    reach the wait: the statement stayed queued until the connection abandoned
    it (cancelling.CANCEL_GRACE later, "canceling statement due to user
    request")."""
    hog = psycopg.connect(server.dsn("mallory", password=MALLORY), autocommit=True)
    ended: list[str | None] = []

    def slow() -> None:
        try:
            hog.execute(SLOW)
            ended.append(None)
        except psycopg.Error as exc:
            ended.append(exc.sqlstate)

    runner = threading.Thread(target=slow, daemon=True)
    try:
        runner.start()
        with psycopg.connect(server.dsn("mallory", password=MALLORY), autocommit=True) as c:
            caught: list[BaseException] = []

            def wait() -> None:
                try:
                    c.execute("SELECT count(*) FROM range(5)")
                except psycopg.Error as exc:
                    caught.append(exc)

            waiter = threading.Thread(target=wait)
            waiter.start()
            deadline = time.monotonic() + PROBE_SECONDS  # setup: the statement is queued
            while _waiters(server) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _waiters(server) == 1 and not ended
            c.cancel()
            waiter.join(PROBE_SECONDS)
            assert len(caught) == 1 and isinstance(caught[0], psycopg.errors.QueryCanceled)
            assert "query cancelled at the client's request" in str(caught[0]), caught
            assert _waiters(server) == 0 and not ended  # it left the queue; the hog runs on
            hog.cancel()
            runner.join(30)
            assert ended == ["57014"]
            assert c.execute("SELECT count(*) FROM range(5)").fetchone() == (5,)
    finally:
        hog.cancel()
        hog.close()
