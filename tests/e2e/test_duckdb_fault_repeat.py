"""A statement that makes DuckDB fail internally could be repeated: each time
the DuckDB was rebuilt and every query running on the old one beside it was
a 503, so one role user looping it made everyone's statements fail. Now the
statement is quarantined after its first fault (refused at once, 400, not
run), and a role user whose statements keep making DuckDB fail has their
queries refused for a while (503, Retry-After), others going on."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.e2e.test_duckdb_fault import TRIGGER, restarts
from tests.helpers import err, ok, rows, sql

TOKENS = [{"token": "t-root", "user": "root", "role": "admin"},
          {"token": "t-mal", "user": "mallory", "role": "user"},
          {"token": "t-bob", "user": "bob", "role": "user"}]


async def _server(aiohttp_client: Any, cfg: Config) -> Any:
    cfg.auth.mode, cfg.auth.tokens = "token", TOKENS
    client = await aiohttp_client(create_app(cfg))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, j JSON); "
             "INSERT INTO app.t VALUES (1, '{\"a\": 2}'); "
             "CREATE USER TABLE app.mine (k INT PRIMARY KEY, j JSON)", token="t-root")
    await ok(client, "INSERT INTO app.mine VALUES (1, '{\"a\": 2}')", token="t-mal")
    return client


async def _metric(client: Any, name: str) -> dict[str, float]:
    resp = await client.get("/metrics", headers={"Authorization": "Bearer t-root"})
    text = await resp.text()
    return {labels: float(n) for labels, n in re.findall(
        rf"^{name}(\S*) (\S+)$", text, re.M)}


async def test_a_repeated_fault_rebuilds_duckdb_once(
        aiohttp_client: Any, cairn_config: Config) -> None:
    client = await _server(aiohttp_client, cairn_config)
    before = await restarts(client, "t-root")
    first = TRIGGER.replace("FROM app.mine", "FROM app.mine WHERE k > 0")
    said = await err(client, first, "INVALID_ARGUMENT", token="t-mal")
    assert said.startswith("DuckDB failed internally on this statement")
    assert await restarts(client, "t-root") == before + 1
    refused = (await _metric(client, "cairn_duckdb_fault_refusals_total"))['{reason="quarantined"}']
    # The same statement, again, written a little otherwise (case, spaces, a
    # comment, another literal), by its user: refused, not run.
    same = [first, first.lower(), "/* again */ " + first.replace(" AS ", "  as  ") + ";",
            first.replace("k > 0", "k>7"), first.replace("k > 0", "k > -- no\n 2.5e3"),
            "EXPLAIN ANALYZE " + first, "EXPLAIN " + first,  # DuckDB plans it: constants folded
            f"/* {'long ' * 1000}*/ {first}"]  # a thread checks it
    for text in same:
        said = await err(client, text, "INVALID_ARGUMENT", token="t-mal")
        assert "made the query engine (DuckDB) fail internally before" in said, text
        assert "not run again" in said
    assert await restarts(client, "t-root") == before + 1  # one rebuild, however often sent
    # Another user's same statement is not refused for mallory's fault: it runs
    # (bob's rows of app.mine: none, so no fault).
    assert await rows(client, first, token="t-bob") == []
    got = await _metric(client, "cairn_duckdb_fault_refusals_total")
    assert got['{reason="quarantined"}'] == refused + len(same)
    # Other statements run, the user's own too; the quarantine is of that statement.
    assert await rows(client, "SELECT k FROM app.mine", token="t-mal") == [{"k": 1}]
    assert await rows(client, "SELECT json_type(j) AS t FROM app.mine", token="t-mal") == \
        [{"t": "OBJECT"}]
    assert await rows(client, "SELECT k FROM app.t", token="t-bob") == [{"k": 1}]


async def test_a_user_who_keeps_failing_duckdb_is_braked_and_others_go_on(
        aiohttp_client: Any, cairn_config: Config, caplog: pytest.LogCaptureFixture) -> None:
    client = await _server(aiohttp_client, cairn_config)  # duckdb_faults_per_user = 3
    before = await restarts(client, "t-root")
    brakes = (await _metric(client, "cairn_duckdb_fault_brakes_total"))[""]
    # Three different statements that each make DuckDB fail: each is run once.
    variants = [TRIGGER.replace("AS t", f"AS t{i}") for i in range(3)]
    caplog.set_level(logging.WARNING)
    for text in variants:
        assert "DuckDB failed internally" in await err(client, text, "INVALID_ARGUMENT",
                                                      token="t-mal")
    assert await restarts(client, "t-root") == before + 3
    assert "user 'mallory': 3 statements made DuckDB fail internally within 600 s" in caplog.text
    # Now any query of that user is refused, a fourth variant not run either.
    for text in ("SELECT 1 AS one", TRIGGER.replace("AS t", "AS t9"), "EXPLAIN SELECT 1 AS one"):
        status, body = await sql(client, text, token="t-mal")
        assert status == 503 and body["error"]["code"] == "UNAVAILABLE", body
        assert "queries of user 'mallory' are refused" in body["error"]["message"]
    resp = await client.post("/api/sql", json={"sql": "SELECT 1"},
                             headers={"Authorization": "Bearer t-mal"})
    assert resp.status == 503 and 1 <= int(resp.headers["Retry-After"]) <= 600
    assert await restarts(client, "t-root") == before + 3
    assert caplog.text.count("are refused") == 1  # the start, not each refusal
    # Others go on: a role user, and the admin (who is never braked).
    assert await rows(client, "SELECT k FROM app.t", token="t-bob") == [{"k": 1}]
    assert await rows(client, "SELECT 1 AS one", token="t-root") == [{"one": 1}]
    assert "DuckDB failed internally" in await err(
        client, TRIGGER.replace("app.mine", "app.t"), "INVALID_ARGUMENT", token="t-root")
    assert await rows(client, "SELECT 2 AS two", token="t-root") == [{"two": 2}]
    # Statements that run no query still work for the braked user.
    assert await ok(client, "SHOW TABLES IN app", token="t-mal")
    assert (await _metric(client, "cairn_duckdb_fault_brakes_total"))[""] == brakes + 1


async def test_the_quarantine_is_bounded(aiohttp_client: Any, cairn_config: Config) -> None:
    """An LRU of `duckdb_fault_quarantine` statements: the oldest is forgotten
    (and runs again) once more have failed."""
    cairn_config.server.duckdb_fault_quarantine = 1
    client = await _server(aiohttp_client, cairn_config)
    before = await restarts(client, "t-root")
    first = TRIGGER.replace("app.mine", "app.t")
    second = first.replace("AS t", "AS u")
    for text in (first, second, first):
        assert "DuckDB failed internally" in await err(client, text, "INVALID_ARGUMENT",
                                                      token="t-root")
    assert "fail internally before" in await err(client, first, "INVALID_ARGUMENT",
                                                 token="t-root")
    assert await restarts(client, "t-root") == before + 3
