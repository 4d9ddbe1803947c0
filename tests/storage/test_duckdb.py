"""The DuckDB plumbing under the engine: the sandboxed connections
(storage/sandbox.py), Arrow tables registered for one query only and the
fallback on DuckDB's public API (storage/duck.py), and the query watchdog."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from catalog.errors import AlreadyExists, InvalidArgument
from storage import duck, sandbox
from storage.engine import Engine
from storage.watchdog import Watchdog

from .conftest import Run, col


def test_public_duckdb_api_fallback(
    engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duck, "_SUBMIT", None)
    monkeypatch.setattr(duck, "_REGISTER", None)
    engine.create_table("app", "t", "shared", [col("id", primary_key=True), col("v")])
    run("INSERT INTO app.t VALUES (1, 1)")
    with pytest.raises(AlreadyExists):
        run("INSERT INTO app.t VALUES (1, 2)")
    assert run("SELECT id, v FROM app.t") == [{"id": 1, "v": 1}]
    assert {r["namespace"] for r in run("SELECT namespace FROM system.namespaces")} == {"app"}


@pytest.mark.parametrize("threads", [1, 2])  # the small DuckDB and the main one
def test_connections_are_locked(tmp_path: Path, threads: int) -> None:
    con = sandbox.connect(tmp_path, sandbox.fraction_of("1GB", 4), threads)
    cur = con.cursor()
    settings = dict(cur.sql("SELECT name, value FROM duckdb_settings() WHERE name IN "
                            "('enable_external_access', 'lock_configuration', 'threads', "
                            "'python_enable_replacements', 'parquet_metadata_cache', "
                            "'disable_parquet_prefetching')").fetchall())
    # Every query runs on a cursor: the settings must be the cursor's too, not
    # only the connection's (a plain SET of a session setting is not).
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "threads": str(threads), "python_enable_replacements": "false",
                        "parquet_metadata_cache": "true", "disable_parquet_prefetching": "true"}
    with pytest.raises(duckdb.Error):
        cur.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        cur.sql("SELECT * FROM read_text('/etc/hostname')").fetchall()
    con.close()


def test_small_memory_limit() -> None:
    assert sandbox.fraction_of("1GB", 4) == "250000KB"
    assert sandbox.fraction_of("100MB", 4) == "64000KB"  # never below 64 MB
    assert sandbox.fraction_of("32MB", 4) == "32000KB"  # nor above the limit itself
    assert sandbox.fraction_of("a lot", 4) == "a lot"


@pytest.mark.parametrize("public_api", [False, True])
def test_registered_tables_do_not_outlive_their_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, public_api: bool
) -> None:
    if public_api:
        monkeypatch.setattr(duck, "_REGISTER", None)
    cur = sandbox.connect(tmp_path, "1GB", 1).cursor()
    sources = duck.Sources(cur)
    names = [sources.add(f"__cairn_test_{i}", pa.table({"a": [i, i + 1]})) for i in range(2)]
    both = f"SELECT sum(a) AS s FROM (SELECT a FROM {names[0]} UNION ALL SELECT a FROM {names[1]})"
    assert duck.fetch_arrow(cur, both).to_pylist() == [{"s": 4}]
    sources.close()
    for name in names:
        with pytest.raises(duckdb.Error):
            cur.sql(f"SELECT * FROM {name}").fetchall()


class _Binds:
    """A cursor that counts the statements bound (not run) on it: `sql()`."""

    def __init__(self, cur: object) -> None:
        self.cur, self.binds = cur, 0

    def sql(self, text: str) -> object:
        self.binds += 1
        return self.cur.sql(text)  # type: ignore[attr-defined]


@pytest.mark.parametrize("bounded", [False, True])
def test_an_answers_checks_take_the_types_its_run_said(tmp_path: Path, bounded: bool) -> None:
    """UHUGEINT, TIMETZ, UUID and BIT are read off the result that ran: no
    second bind of the statement (binding a read of 40 Parquet files cost as
    much as the read), and the same answers and refusals as when bound."""
    cur = sandbox.connect(tmp_path, "1GB", 1).cursor()
    sqls = {
        "uhuge": "SELECT md5_number('b') AS u, 1::DECIMAL(38, 0) AS d",
        "timetz": "SELECT [TIMETZ '12:00:00+05'] AS t",
        "uuid": "SELECT '0000000a-0000-0000-0000-000000000000'::UUID AS u, 'x' AS s",
        "bit": "SELECT '0101'::BIT AS b, [BITSTRING('1', 3)] AS l, 'x'::BLOB AS x",
    }
    for kind, sql in sqls.items():
        answers = []
        for noted in ([], None):
            kinds: list[object] | None = noted
            seen = _Binds(cur)
            try:
                if bounded:
                    table, _ = duck.fetch_bounded(cur, sql, 10, None, kinds)
                else:
                    table = duck.fetch_arrow(cur, sql, kinds)
                answers.append(duck.checked(seen, sql, table, kinds))
            except InvalidArgument as exc:
                answers.append(exc.message)
            assert seen.binds == (0 if noted is not None else 1), (kind, noted)
        assert answers[0] == answers[1], kind
        if kind in ("uhuge", "timetz"):
            assert isinstance(answers[0], str), kind
        else:
            assert isinstance(answers[0], pa.Table) and answers[0].equals(answers[1], True)
    bits = answers[0]
    assert bits.to_pylist() == [{"b": "0101", "l": ["001"], "x": b"x"}]


def test_watchdog_fires_only_live_alarms() -> None:
    dog = Watchdog()
    hits: list[str] = []
    # Both alarms are set and one disarmed before the watchdog's thread runs
    # at all (under load, 50 ms passed between arm and disarm and `a` fired
    # first); then both deadlines pass with the thread running.
    dog._thread = threading.current_thread()  # arm() starts no thread
    a = dog.arm(0.05, lambda: hits.append("a"))
    b = dog.arm(0.05, lambda: hits.append("b"))
    assert dog.disarm(a) is False
    dog._thread = threading.Thread(target=dog._loop, daemon=True)
    dog._thread.start()
    for _ in range(1000):  # b's first firing: a's deadline, earlier, was passed over
        if hits:
            break
        time.sleep(0.01)
    time.sleep(0.2)  # a few of b's refirings
    assert hits and set(hits) == {"b"}  # b fired (again and again: it was not disarmed)
    assert dog.disarm(b) is True
    seen = len(hits)
    time.sleep(0.2)
    assert len(hits) == seen  # disarmed: never again
    dog.stop()


def test_an_alarm_that_fires_before_its_query_runs_still_stops_it() -> None:
    """DuckDB drops an interrupt that comes before its query runs: a query
    whose deadline passed while it was being started (pgwire's
    `statement_timeout = 1` ms: one query in ~20) ran on to its end (47 s).
    The watchdog fires again until the alarm is disarmed."""
    dog = Watchdog()
    cur = duckdb.connect().cursor()
    alarm = dog.arm(0, cur.interrupt)
    while not alarm.fired:  # it has fired: before the query below starts
        time.sleep(0.001)
    safety = threading.Timer(30, cur.interrupt)  # else the query would run for minutes
    safety.start()
    started = time.monotonic()
    try:
        with pytest.raises(duckdb.InterruptException):
            cur.execute("SELECT count(*) FROM range(0, 1000000000000) WHERE range % 7 = 0")
        assert time.monotonic() - started < 10
    finally:
        safety.cancel()
        dog.disarm(alarm)
        dog.stop()
