"""A CancelRequest for a write: either nothing is written and the client is
told 57014, or the write has committed and the client is told it completed.
The interrupt reached only a SELECT's DuckDB query: an INSERT … SELECT, or an
UPDATE / DELETE with a slow WHERE, was abandoned after CANCEL_GRACE (57014)
while it ran on, and its rows landed seconds later."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from server.pgwire.connection import CANCEL_GRACE
from server.session import Interrupt
from tests.pgwire.conftest import PgServer

# Each runs for many seconds uncancelled (a billion-row scan), then writes.
SLOW = {
    "insert": "INSERT INTO cw.t (id, v) SELECT range + 1000, 'cancelled' "
              "FROM range(0, 2000000000) WHERE range % 1000000000 = 0",
    "update": "UPDATE cw.t SET v = 'cancelled' WHERE id < 5 AND "
              "(SELECT count(*) FROM range(0, 2000000000) WHERE range % 7 = 0) > 0",
    "delete": "DELETE FROM cw.t WHERE id < 5 AND "
              "(SELECT count(*) FROM range(0, 2000000000) WHERE range % 7 = 0) > 0",
}


@pytest.fixture(scope="module")
def table(pg: PgServer) -> PgServer:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE cw")
        conn.execute("CREATE TABLE cw.t (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO cw.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    return pg


@pytest.mark.parametrize("kind", list(SLOW))
def test_a_cancelled_write_stops_at_once_and_writes_nothing(table: PgServer, kind: str) -> None:
    with psycopg.connect(table.dsn(), autocommit=True) as conn:
        threading.Timer(0.5, conn.cancel).start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(SLOW[kind])
        # Its DuckDB query was interrupted: not abandoned after the grace.
        assert time.monotonic() - started < CANCEL_GRACE
        time.sleep(3)  # an abandoned statement thread wrote in this time
        rows = conn.execute("SELECT id, v FROM cw.t ORDER BY id").fetchall()
        assert rows == [(1, "a"), (2, "b"), (3, "c")]


def test_an_interrupt_fired_before_the_commit_refuses_it() -> None:
    """A cancel between the query phase and the commit: CANCELLED, nothing written."""
    fired = Interrupt()
    assert fired.fire()
    assert not fired.commit()
    committed = Interrupt()
    assert committed.commit()
    assert not committed.fire()  # too late: it completes, and the client is told so
    assert not committed.fired
