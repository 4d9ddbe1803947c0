"""`/metrics` counts role users' statements waiting for a statement thread
(`cairn_statement_thread_waiters`) and those refused when their timeout passed
as they waited (`cairn_statement_thread_wait_timeouts_total`). Before, nothing
showed the waits: a user's statements queued behind their share of `[server]
blocking_threads` were seen only as slow requests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pgwire.conftest import PgServer, _start
from tests.pgwire.test_thread_shares import CONFIG, MALLORY, ROOT, SLOW, _get

WAIT_SECONDS = 60.0  # for a state that comes in well under a second


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PgServer]:
    yield from _start(tmp_path, CONFIG)


def _sample(pg: PgServer, name: str) -> float:
    status, body = _get(pg.proc.url + "/metrics", ROOT)
    assert status == 200, body
    m = re.search(rf"^{name} (\S+)$", body.decode(), re.MULTILINE)
    assert m is not None, f"no {name} in /metrics"
    return float(m.group(1))


def _until(pg: PgServer, name: str, value: float) -> None:
    end = time.monotonic() + WAIT_SECONDS
    while (seen := _sample(pg, name)) != value:
        assert time.monotonic() < end, (name, seen, value)
        time.sleep(0.05)


def test_waits_for_a_statement_thread_are_counted(server: PgServer) -> None:
    assert _sample(server, "cairn_statement_thread_waiters") == 0
    assert _sample(server, "cairn_statement_thread_wait_timeouts_total") == 0
    # Mallory's share is one thread: of her two slow statements one runs, one waits.
    conns = [psycopg.connect(server.dsn("mallory", password=MALLORY), autocommit=True)
             for _ in range(2)]
    ends: list[str | None] = []

    def slow(conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute(SLOW)
            ends.append(None)
        except psycopg.Error as exc:
            ends.append(exc.sqlstate)

    runners = [threading.Thread(target=slow, args=(c,), daemon=True) for c in conns]
    try:
        for t in runners:
            t.start()
        _until(server, "cairn_statement_thread_waiters", 1)
        # A third with a short timeout waits beside it, then is refused.
        with psycopg.connect(server.dsn("mallory", password=MALLORY), autocommit=True) as c:
            c.execute("SET statement_timeout = 500")
            with pytest.raises(psycopg.errors.QueryCanceled, match="for a statement thread"):
                c.execute("SELECT count(*) FROM range(5)")
        assert _sample(server, "cairn_statement_thread_wait_timeouts_total") == 1
        assert _sample(server, "cairn_statement_thread_waiters") == 1  # the slow one still
    finally:
        for c in conns:
            c.cancel()
        for t in runners:
            t.join(WAIT_SECONDS)
        for c in conns:
            c.close()
    assert ends == ["57014", "57014"], ends
    assert _sample(server, "cairn_statement_thread_waiters") == 0
    assert _sample(server, "cairn_statement_thread_wait_timeouts_total") == 1
