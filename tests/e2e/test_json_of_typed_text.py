"""A UUID, BIT or ENUM into a JSON column is the JSON string DuckDB's
CAST(... AS JSON) makes of it. DuckDB hands each to Arrow as text, which the
write took as JSON text: '00000000-...-000a' and '0101' were refused as
malformed JSON (the same UUID inside a LIST was stored as a string)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows

UUID = "UUID '00000000-0000-0000-0000-00000000000a'"
VALUES = [(UUID, "00000000-0000-0000-0000-00000000000a"), ("BIT '0101'", "0101"),
          ("'a'::ENUM('a', 'b')", "a"),
          ("'0000000000000000000000000000000b'::uuid", "00000000-0000-0000-0000-00000000000b")]


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.t (k INT PRIMARY KEY, j JSON, c TEXT)")
    await ok(client, "INSERT INTO app.t (k) VALUES (0)")
    return client


@pytest.mark.parametrize(("value", "want"), VALUES)
async def test_a_typed_text_value_into_json_is_a_json_string(
        app: Any, value: str, want: Any) -> None:
    cast = await rows(app, f"SELECT CAST({value} AS JSON)::VARCHAR AS v")
    await ok(app, f"INSERT INTO app.t (k, j, c) VALUES (1, {value}, {value})")
    await ok(app, f"INSERT INTO app.t (k, j, c) SELECT 2, {value}, {value}")
    await ok(app, f"INSERT INTO app.t (k, j) SELECT 3, x FROM (SELECT {value} AS x) s")
    await ok(app, f"UPDATE app.t SET j = {value}, c = {value} WHERE k = 0")
    await ok(app, f"INSERT INTO app.t (k, j) VALUES (4, [{value}])")
    got = await rows(app, "SELECT k, j::VARCHAR AS j, c FROM app.t ORDER BY k")
    assert cast == [{"v": f'"{want}"'}]
    assert [r["j"] for r in got] == [cast[0]["v"]] * 4 + [f"[{cast[0]['v']}]"], got
    assert [r["c"] for r in got] == [want, want, want, None, None], got
    found = await rows(app, f"SELECT count(*) AS n FROM app.t WHERE j = CAST({value} AS JSON)")
    assert found == [{"n": 4}]


async def test_text_into_json_is_still_read_as_json(app: Any) -> None:
    """Text (VARCHAR) is JSON text to the CAST, not a string: '0101' is no JSON."""
    await ok(app, "INSERT INTO app.t (k, j) SELECT 1, '{\"a\": 1}'")
    message = await err(app, "INSERT INTO app.t (k, j) VALUES (2, '0101' || '')",
                        "INVALID_ARGUMENT")
    assert "not valid JSON" in message, message
    await err(app, f"INSERT INTO app.t (k, j) SELECT 2, {UUID}::VARCHAR", "INVALID_ARGUMENT")
    assert await rows(app, "SELECT k, j::VARCHAR AS j FROM app.t WHERE k > 0") == [
        {"k": 1, "j": '{"a": 1}'}]
