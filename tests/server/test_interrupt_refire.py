"""A cancel that comes as the statement's DuckDB query is being started.

DuckDB drops an interrupt sent before its query runs. `Interrupt.fire` sent
the cursor's interrupt once: a CancelRequest that came between the engine
handing over the cursor and DuckDB starting the query was lost, the query ran
to its timeout and held its statement thread (the CI run of 2026-12-08: a role
user's four cancelled queries, one of them still running, kept her next
statement waiting past 20 s). Now a fired Interrupt interrupts the cursor
again until the query is done; once the engine takes the cursor back, never."""

from __future__ import annotations

import time

import duckdb
import pytest

from server.session import Interrupt
from storage.watchdog import REFIRE

# Runs for seconds here unless interrupted (bounded: the code before ends it).
LONG = "SELECT count(*) FROM range(600000000) WHERE range % 7 = 0"


def test_a_cancel_before_duckdb_starts_the_query_still_stops_it() -> None:
    cur = duckdb.connect().cursor()
    interrupt = Interrupt()
    interrupt.target(cur.interrupt)  # the engine hands it over, then starts the query
    assert interrupt.fire()  # the cancel, before DuckDB runs anything: DuckDB drops it
    with pytest.raises(duckdb.InterruptException):
        cur.execute(LONG).fetchall()
    interrupt.target(None)  # the query is done
    time.sleep(REFIRE * 4)
    # The cursor's next query (the thread's, another statement's) is not interrupted.
    assert cur.execute("SELECT 42").fetchall() == [(42,)]


def test_a_cancel_as_the_query_ends_leaves_the_cursor_alone() -> None:
    cur = duckdb.connect().cursor()
    interrupt = Interrupt()
    interrupt.target(cur.interrupt)
    assert cur.execute("SELECT 1").fetchall() == [(1,)]
    assert interrupt.fire()  # came late: the query had ended, its answer stands
    interrupt.target(None)
    time.sleep(REFIRE * 4)
    assert cur.execute("SELECT 2").fetchall() == [(2,)]
    with pytest.raises(Exception, match="cancelled"):
        interrupt.target(cur.interrupt)  # a fired statement starts no further query
