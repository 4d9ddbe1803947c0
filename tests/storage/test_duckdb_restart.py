"""A statement that makes DuckDB fail internally invalidated the server's
DuckDB: every later query of every user failed ("database has been
invalidated ... must be restarted") until the process restarted, and the
statement's own error carried DuckDB's native stack trace with server paths.
Now that statement gets a 400 saying DuckDB failed on it, the DuckDB is
replaced by a fresh one built the same way, and the next query runs."""

from __future__ import annotations

import logging
import threading

import duckdb
import pytest

from catalog.errors import InvalidArgument, Unavailable
from storage import duckrestart
from storage.engine import Engine

from .conftest import Run, col

# DuckDB 2.0's JSON functions on a JSON[] holding a NULL: "INTERNAL Error:
# Scalar function "json_type" threw an execution error, but the function is
# not marked as fallible", after which the database is invalid.
# A struct's field: the one form Cairn does not refuse before DuckDB runs
# (storage/duckbugs.py follows a subquery's column, not a field).
TRIGGER = "SELECT json_type(s.x) AS v FROM (SELECT {'x': ['2', NULL]::JSON[]} AS s) t"


def _no_trace(message: str) -> None:
    assert "Stack Trace" not in message
    assert "/" not in message, message
    assert ".so" not in message


@pytest.fixture
def table(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("j", "JSON")])
    run("""INSERT INTO app.t VALUES (1, '{"a": 2}'), (2, '{"a": 3}')""")


@pytest.mark.parametrize("big", [False, True])
def test_an_internal_error_restarts_duckdb_and_the_next_query_runs(
        engine: Engine, run: Run, table: None, big: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    # `big`: the query reads enough rows to go to the main DuckDB (else the small one).
    trigger = TRIGGER.replace("FROM (", "FROM range(3) r, (") if big else TRIGGER
    before = dict(duckrestart.RESTARTS)
    with caplog.at_level(logging.WARNING, logger="cairn.storage"), \
            pytest.raises(InvalidArgument, match="DuckDB failed internally on this statement"
                          ) as info:
        run(trigger)
    _no_trace(info.value.message)
    assert 'Scalar function "json_type"' in info.value.message
    assert "restarted" in info.value.message
    db = "main" if big else "small"
    assert duckrestart.RESTARTS[db] == before.get(db, 0) + 1
    assert f"DuckDB ({db}) failed internally on a query (Select)" in caplog.text
    assert "[2, NULL]" not in caplog.text  # no user data in the log
    # Every kind of statement DuckDB runs works afterwards, on either DuckDB.
    assert run("SELECT 1 AS one") == [{"one": 1}]
    assert run("SELECT count(*) AS n FROM range(200000) r, app.t") == [{"n": 400000}]
    assert run("SELECT id FROM app.t WHERE j->>'a' = '3'") == [{"id": 2}]
    assert run("DELETE FROM app.t WHERE id = 1") == 1
    assert run("SELECT id FROM app.t") == [{"id": 2}]
    assert run("SELECT count(*) AS n FROM system.jobs") == [{"n": 0}]
    # The new DuckDB is locked down as the first was.
    settings = dict(engine._con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN "
        "('enable_external_access', 'lock_configuration', 'TimeZone')").fetchall())
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "TimeZone": "UTC"}


def test_a_query_that_meets_the_invalidated_duckdb_is_told_to_run_again(
        engine: Engine, run: Run, table: None) -> None:
    """A query that meets a database invalidated by another statement (here
    one run on the small DuckDB past the engine, so not yet replaced) is
    UNAVAILABLE, to be run again, not the fault of its statement; it has the
    DuckDB replaced, once."""
    db = engine.duckdbs.small
    cur, generation = db.cursor()
    with pytest.raises(duckdb.InternalException):
        cur.execute(TRIGGER).fetchall()
    before = duckrestart.RESTARTS["small"]
    with pytest.raises(Unavailable, match="run it again") as info:
        run("SELECT id FROM app.t")
    _no_trace(info.value.message)
    assert duckrestart.RESTARTS["small"] == before + 1
    assert db.generation == generation + 1
    assert run("SELECT id FROM app.t ORDER BY id") == [{"id": 1}, {"id": 2}]
    assert not db.restart(generation, "a query", Exception())  # that fault: replaced already


def test_threads_meeting_the_fault_together_all_go_on(
        engine: Engine, run: Run, table: None) -> None:
    """Four threads each run the trigger and a query, five times: every
    trigger is a 400, a query is answered or (on a DuckDB another thread's
    trigger invalidated under it) UNAVAILABLE, and afterwards all is well."""
    triggers: list[BaseException] = []
    answers: list[object] = []

    def go() -> None:
        for _ in range(5):
            with pytest.raises((InvalidArgument, Unavailable)) as info:
                run(TRIGGER)
            triggers.append(info.value)
            try:
                answers.append(run("SELECT id FROM app.t ORDER BY id"))
            except Unavailable as exc:
                answers.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(triggers) == len(answers) == 20
    for exc in triggers:
        _no_trace(exc.message)
    assert any(a == [{"id": 1}, {"id": 2}] for a in answers)
    assert all(a == [{"id": 1}, {"id": 2}] or isinstance(a, Unavailable) for a in answers)
    assert run("SELECT id FROM app.t ORDER BY id") == [{"id": 1}, {"id": 2}]


def test_the_spelling_duckdb_is_replaced_after_an_internal_error() -> None:
    """The private DuckDB that spells values (storage/spelling.py) stayed
    invalid too: every later INSERT of a number into a TEXT column failed."""
    from storage import spelling

    with pytest.raises(duckdb.InternalException):
        spelling._run(TRIGGER.replace(" AS v", ""))
    assert spelling.spelled("12345.678e1", "DOUBLE") == "123456.78"


@pytest.mark.parametrize("sql", [
    "SELECT json_extract(json_extract(j, ['a', 'b']), 1) FROM app.t",
    "SELECT id FROM app.t WHERE j -> ['a', 'b'] -> 1 IS NULL",
    "SELECT json_type(['2', NULL]::JSON[])",
    "SELECT json_array_length(json_extract(j, ['a'])) FROM app.t",
    # a regress pass's: a list the statement shows, however it is made
    "SELECT json_type([NULL::JSON])",
    "SELECT json_array_length(['1'::JSON, NULL])",
    "SELECT json_keys([NULL::JSON])",
    "SELECT json_merge_patch([NULL::JSON], '{}')",
    "SELECT json_merge_patch('{}', [NULL::JSON])",
    "SELECT json_type(array_agg(NULL::JSON))",
    "SELECT json_type(list_concat(j -> ['a', 'b'], [])) FROM app.t",
    "SELECT json_type((j -> ['a', 'b'])[1:2]) FROM app.t",
    # and one a wrapper answers (a third regress pass's)
    "SELECT json_type(coalesce([NULL::JSON]))",
    "SELECT json_type(CASE WHEN true THEN [NULL::JSON] END)",
    "SELECT json_type(if(true, [NULL::JSON], NULL))",
    "SELECT json_type(ifnull(NULL, [1::JSON, NULL]))",
    "SELECT json_type(nullif([NULL::JSON], [1::JSON]))",
    "SELECT json_type(greatest([1::JSON, NULL]))",
    "SELECT json_type(([[NULL::JSON]])[1])",
    "SELECT json_type(list_extract([[NULL::JSON]], 1))",
    "SELECT json_type(unnest([[1::JSON, NULL]]))",
    "SELECT json_type(map_values(map(['k'], [NULL::JSON])))",
    "SELECT json_type(json_transform('[1,null]', '[\"JSON\"]'))",
    "SELECT json_type(from_json('[1,null]', '[\"JSON\"]'))",
    # a subquery's or CTE's column, however it is reached
    "SELECT json_type(x) FROM (SELECT ['2', NULL]::JSON[] AS x) s",
    "SELECT json_type(s.x) FROM (SELECT [j, NULL]::JSON[] AS x FROM app.t) s",
    "SELECT json_type(y) FROM (SELECT ['2', NULL]::JSON[] AS x) s(y)",
    "SELECT json_type(x) FROM (SELECT * FROM (SELECT ['2', NULL]::JSON[] AS x) a) s",
    "SELECT json_type(x[1:2]) FROM (SELECT json_extract(j, ['a', 'b']) AS x FROM app.t) s",
    "SELECT json_type((SELECT ['2', NULL]::JSON[]))",
    "WITH c AS (SELECT [j, NULL]::JSON[] AS x FROM app.t) SELECT json_type(x) FROM c",
    "WITH c(x) AS (SELECT [j, NULL]::JSON[] FROM app.t) SELECT id FROM app.t, c "
    "WHERE json_keys(c.x) IS NULL",
    "SELECT json_type(x) FROM (SELECT [j, NULL]::JSON[] AS x FROM app.t "
    "UNION ALL SELECT NULL) s",
])
def test_a_json_function_on_a_json_list_is_refused_before_duckdb_runs(
        engine: Engine, run: Run, table: None, sql: str) -> None:
    before = sum(duckrestart.RESTARTS.values())
    with pytest.raises(InvalidArgument, match=r"cannot read a JSON\[\] list"):
        run(sql)
    assert sum(duckrestart.RESTARTS.values()) == before


def test_a_relations_closed_connection_is_told_to_run_again() -> None:
    """DuckDB's relation fetch words a replaced connection "Connection has
    already been closed": another statement's fault (it was a 400)."""
    con = duckdb.connect()
    rel = con.sql("SELECT 1")
    con.close()
    with pytest.raises(duckdb.ConnectionException) as info:
        rel.fetchall()
    assert duckrestart.already_invalid(info.value), str(info.value)


def test_the_ways_the_refusal_advises_run(run: Run, table: None) -> None:
    assert run("SELECT json_extract(j, ['a', 'b'])[1] AS a, "
               "to_json(json_extract(j, ['a', 'b'])) -> 1 AS b, "
               "json_extract(json_extract(j, 'a'), '$') AS c FROM app.t WHERE id = 1") == \
        [{"a": "2", "b": "null", "c": "2"}]  # JSON text: the engine answers JSON as text
    assert run("SELECT json_type((j -> ['a', 'b'])[1]) AS t FROM app.t WHERE id = 1") == \
        [{"t": "UBIGINT"}]
    assert run("SELECT json_type(to_json(array_agg(j))) AS u FROM app.t") == [{"u": "ARRAY"}]
    assert run("SELECT json_type(coalesce(j, '{}')) AS c, json_type(to_json(json_extract(j, "
               "['a', 'b']))) AS d FROM app.t WHERE id = 1") == [{"c": "OBJECT", "d": "ARRAY"}]
    # A subquery's or CTE's column that is no list runs (a table's, one
    # element, one document, through `*`, a recursive CTE's).
    assert run("SELECT json_type(x) AS a, json_type(y) AS b, json_type(z) AS c FROM "
               "(SELECT j AS x, json_extract(j, ['a', 'b'])[1] AS y, "
               "to_json(json_extract(j, ['a', 'b'])) AS z FROM app.t WHERE id = 1) s") == \
        [{"a": "OBJECT", "b": "UBIGINT", "c": "ARRAY"}]
    assert run("WITH c AS (SELECT * FROM app.t) SELECT json_extract(j, '$.a') AS a FROM "
               "(SELECT * FROM c) s ORDER BY id") == [{"a": "2"}, {"a": "3"}]
    assert run("WITH RECURSIVE r(x, n) AS (SELECT j, 1 FROM app.t WHERE id = 1 UNION ALL "
               "SELECT x, n + 1 FROM r WHERE n < 3) SELECT json_type(x) AS t FROM r") == \
        [{"t": "OBJECT"}] * 3


def test_the_small_duckdb_is_opened_by_its_first_query(engine: Engine, run: Run) -> None:
    """Opened with the engine, the small DuckDB cost every server ~30 ms of CPU
    (the open and its guards, storage/unstoppable.py) whether or not a small
    query ever came; it is opened by the first."""
    small = engine.duckdbs.small
    assert small is not engine.duckdbs.main and small._con is None
    engine.create_table("app", "s", "shared", [col("id", "BIGINT", primary_key=True)])
    run("SELECT count(*) AS n FROM range(100000) r")  # a big one: the main DuckDB
    assert small._con is None
    assert run("SELECT 41 + 1 AS v") == [{"v": 42}]
    assert small._con is not None and engine.duckdb_runs["small"] >= 1


def test_a_small_duckdb_that_cannot_be_opened_leaves_small_queries_to_the_main_one(
        engine: Engine, run: Run, caplog: pytest.LogCaptureFixture) -> None:
    def refuse(generation: int) -> duckdb.DuckDBPyConnection:
        raise duckdb.IOException("no room for another database")

    engine.duckdbs.small._make = refuse  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        assert run("SELECT 41 + 1 AS v") == [{"v": 42}]
    assert "DuckDB (small) could not be opened" in caplog.text
