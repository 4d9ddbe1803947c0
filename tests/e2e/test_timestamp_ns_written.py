"""A TIMESTAMP_NS into a TIMESTAMP or DATE column is what DuckDB's CAST makes
of it (microseconds, rounded as a query rounds them): a 2024 one was refused
as 'a date or time outside the years 1-9999', Python being unable to hold its
nanoseconds. An INTERVAL a column cannot take is named as SQL shows it, not
as Arrow's [months, days, nanoseconds] triple ('cannot take [0, 0, 1000]')."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows

NS = "'2024-01-01 23:59:59.999999789'::TIMESTAMP_NS"


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.t (k INT PRIMARY KEY, ts TIMESTAMP, d DATE, c TEXT)")
    await ok(client, "INSERT INTO app.t (k) VALUES (0)")
    return client


async def test_a_timestamp_ns_is_written_as_cast_takes_it(app: Any) -> None:
    want = await rows(app, f"SELECT CAST({NS} AS TIMESTAMP)::VARCHAR AS ts, "
                           f"CAST({NS} AS DATE)::VARCHAR AS d, CAST({NS} AS VARCHAR) AS c")
    assert want == [{"ts": "2024-01-02 00:00:00", "d": "2024-01-02",
                     "c": "2024-01-01 23:59:59.999999789"}]
    await ok(app, f"INSERT INTO app.t (k, ts, d, c) VALUES (1, {NS}, {NS}, {NS})")
    await ok(app, f"INSERT INTO app.t (k, ts, d, c) SELECT 2, {NS}, {NS}, {NS}")
    await ok(app, f"UPDATE app.t SET ts = {NS}, d = {NS}, c = {NS} WHERE k = 0")
    got = await rows(app, "SELECT k, ts::VARCHAR AS ts, d::VARCHAR AS d, c FROM app.t "
                          "ORDER BY k")
    assert got == [{"k": k, **want[0]} for k in (0, 1, 2)]
    # (as DuckDB's own TIMESTAMP column: `ts = {NS}` compares in nanoseconds)
    assert await rows(app, f"SELECT count(*) AS n FROM app.t WHERE ts = CAST({NS} AS TIMESTAMP) "
                           f"AND d = CAST({NS} AS DATE)") == [{"n": 3}]


@pytest.mark.parametrize(("value", "shown"), [
    ("INTERVAL '1 microsecond'", "INTERVAL '00:00:00.000001'"),
    ("INTERVAL '-14 months 3 days 100 hours'", "INTERVAL '-1 year -2 months 3 days 100:00:00'"),
])
async def test_an_interval_is_named_as_sql_shows_it(app: Any, value: str, shown: str) -> None:
    text = (await rows(app, f"SELECT {value}::VARCHAR AS v"))[0]["v"]
    assert shown == f"INTERVAL '{text}'"
    for statement in (f"INSERT INTO app.t (k, ts) VALUES (1, {value})",
                      f"INSERT INTO app.t (k, ts) SELECT 1, {value}",
                      f"UPDATE app.t SET d = {value}"):
        message = await err(app, statement, "INVALID_ARGUMENT")
        assert shown in message and "[" not in message, message
