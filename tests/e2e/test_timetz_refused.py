"""A TIME WITH TIME ZONE (TIMETZ, current_time) reaches Arrow from DuckDB as
a time64 without its UTC offset: an answer showed TIMETZ '12:00:00+05' as
12:00:00, and a write stored '12:00:00' in a TEXT or JSON column (VALUES,
INSERT ... SELECT, UPDATE SET, inside a LIST or STRUCT) where DuckDB's CAST
gives '12:00:00+05'. Now it is refused wherever it is, with the advice to
cast it to VARCHAR, which keeps the offset."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows

TZ = "TIMETZ '12:00:00+05'"


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.t (k INT PRIMARY KEY, c TEXT, j JSON)")
    await ok(client, "INSERT INTO app.t (k, c) VALUES (1, 'before')")
    return client


@pytest.mark.parametrize("text", [
    f"INSERT INTO app.t (k, c) VALUES (2, {TZ})",
    f"INSERT INTO app.t (k, c) VALUES (2, /* tree */ {TZ})",
    f"INSERT INTO app.t (k, j) VALUES (2, {TZ})",
    f"INSERT INTO app.t (k, j) VALUES (2, [{TZ}])",
    f"INSERT INTO app.t (k, c) VALUES (2, {{'a': {TZ}}})",
    f"INSERT INTO app.t (k, c) SELECT 2, {TZ}",
    "INSERT INTO app.t (k, c) SELECT 2, current_time",
    f"INSERT INTO app.t (k, c) VALUES (2, (SELECT {TZ}))",
    f"UPDATE app.t SET c = {TZ} WHERE k = 1",
    f"UPDATE app.t SET j = MAP {{1: {TZ}}} WHERE k = 1",
    f"SELECT {TZ} AS v",
    f"SELECT [{TZ}] AS v",
    "SELECT current_time AS v",
    f"SELECT union_value(a := {TZ}) AS u",
])
async def test_a_time_with_time_zone_is_refused(app: Any, text: str) -> None:
    message = await err(app, text, "INVALID_ARGUMENT")
    assert "TIME WITH TIME ZONE" in message and "VARCHAR" in message, message
    assert await rows(app, "SELECT k, c, j FROM app.t") == [{"k": 1, "c": "before", "j": None}]


async def test_cast_to_varchar_keeps_the_offset_and_finds_the_row(app: Any) -> None:
    await ok(app, f"INSERT INTO app.t (k, c) VALUES (2, CAST({TZ} AS VARCHAR))")
    await ok(app, f"INSERT INTO app.t (k, c, j) SELECT 3, {TZ}::VARCHAR, [{TZ}::VARCHAR]")
    assert await rows(app, f"SELECT k, c, j FROM app.t WHERE c = CAST({TZ} AS VARCHAR) "
                           "ORDER BY k") == [{"k": 2, "c": "12:00:00+05", "j": None},
                                             {"k": 3, "c": "12:00:00+05", "j": ["12:00:00+05"]}]
    # A TIME (no zone) is still answered and written as it was.
    await ok(app, "INSERT INTO app.t (k, c) VALUES (4, TIME '12:00:00')")
    assert await rows(app, "SELECT c, TIME '01:02:03' AS t FROM app.t WHERE k = 4") == [
        {"c": "12:00:00", "t": "01:02:03"}]
