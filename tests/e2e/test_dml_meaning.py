"""An UPDATE or DELETE finds the rows its WHERE finds in a SELECT, and both
find DuckDB's (sqlgrammar/reprint.py, storage/dml.py).

Found by trying: `x NOT IN [NULL, 1]` is list membership to DuckDB (true for
2), sqlglot read the SQL list `IN (NULL, 1)` (NULL for 2): the DELETE removed
no row, and `(x IN [NULL, 1]) IS NOT FALSE` removed every row. A DELETE or
UPDATE printed its WHERE and SET and parsed them again, so `IN ARRAY[..]`
(right in a SELECT) came back as `IN (..)`, and `f(json_extract(j, 'a'))`,
printed `f(j -> 'a')`, came back a lambda: refused in a DELETE that a SELECT
ran, and a lambda DuckDB refuses ran. The model is DuckDB itself, in process,
over a plain table holding the same rows: the rows a SELECT gives, the rows a
DELETE leaves and the values an UPDATE sets, or an error from both."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from tests.helpers import rows, sql

TABLE = "CREATE TABLE app.t (k INT PRIMARY KEY, i INT, j JSON, v TEXT)"
INSERT = ("INSERT INTO app.t VALUES (1, 1, '{\"a\": 1}', 'x'), (2, 2, '{\"a\": 2}', 'y'), "
          "(3, NULL, NULL, 'z')")
LEFT = "SELECT k, i, v FROM app.t ORDER BY k"

WHERES = ["i NOT IN [NULL, 1]", "(i IN [NULL, 1]) IS NOT FALSE", "i NOT IN ARRAY[NULL, 1]",
          "i NOT IN list_value(NULL, 1)", "NOT i IN [NULL, 1]", "i IN [NULL, 2] = true",
          "i NOT IN []", "(i IN []) IS FALSE", "i IN [1, 2, 3][2:3]", "i IN [[1]][1] OR k = 3",
          "i NOT IN (NULL, 1)", "(i NOT IN (NULL, 1)) IS NULL", "i NOT IN ([1])",
          "coalesce(json_extract(j, 'a'), '0') = '1'", "typeof(json_extract(j, 'a')) = 'JSON'",
          "json_extract_string(j, 'a') IN ['2', NULL]",
          "list_transform([1], json_extract(x, '$')) = [1]"]


@pytest.fixture
async def app(client: Any) -> tuple[Any, duckdb.DuckDBPyConnection]:
    status, body = await sql(client, f"CREATE NAMESPACE app; {TABLE}; {INSERT}")
    assert status == 200, body
    model = duckdb.connect()
    model.execute(f"CREATE SCHEMA app; {TABLE}; {INSERT}")
    return client, model


def _model(model: duckdb.DuckDBPyConnection, text: str) -> list[list[Any]] | None:
    """DuckDB's rows of `text` (as strings), or None where DuckDB refuses it."""
    try:
        found = model.execute(text).fetchall()
    except duckdb.Error:
        return None
    return [[None if v is None else str(v) for v in r] for r in found]


async def _cairn(client: Any, text: str) -> list[list[Any]] | None:
    status, body = await sql(client, text)
    if status != 200:
        assert status == 400, body  # refused as the user's error, never a 500
        return None
    found = body["results"][-1]["rows"]
    return [[None if v is None else str(v) for v in r.values()] for r in found]


@pytest.mark.parametrize("where", WHERES)
async def test_a_select_finds_duckdbs_rows(app: Any, where: str) -> None:
    client, model = app
    text = f"SELECT k FROM app.t WHERE {where} ORDER BY k"
    assert await _cairn(client, text) == _model(model, text), text


@pytest.mark.parametrize("where", WHERES)
async def test_a_delete_leaves_duckdbs_rows(app: Any, where: str) -> None:
    client, model = app
    stmt = f"DELETE FROM app.t WHERE {where}"
    assert (await _cairn(client, stmt) is None) == (_model(model, stmt) is None), stmt
    assert await _cairn(client, LEFT) == _model(model, LEFT), stmt


@pytest.mark.parametrize("where", WHERES)
async def test_an_update_sets_duckdbs_rows(app: Any, where: str) -> None:
    client, model = app
    stmt = f"UPDATE app.t SET v = 'set' WHERE {where}"
    assert (await _cairn(client, stmt) is None) == (_model(model, stmt) is None), stmt
    assert await _cairn(client, LEFT) == _model(model, LEFT), stmt


@pytest.mark.parametrize("value", ["upper(json_extract(j, 'a')::VARCHAR)",
                                   "coalesce(json_extract(j, 'a'), '0')::VARCHAR",
                                   "(i NOT IN [NULL, 1])::VARCHAR",
                                   "(i IN list_value(NULL, 1))::VARCHAR || "
                                   "typeof(json_extract(j, 'a'))"])
async def test_an_update_sets_what_a_select_of_its_value_gives(app: Any, value: str) -> None:
    client, model = app
    stmt = f"UPDATE app.t SET v = {value}"
    assert await _cairn(client, f"SELECT {value} FROM app.t ORDER BY k") == _model(
        model, f"SELECT {value} FROM app.t ORDER BY k")
    assert _model(model, stmt) is not None
    assert await _cairn(client, stmt) is not None, stmt
    assert await _cairn(client, LEFT) == _model(model, LEFT), stmt


async def test_list_membership_of_null_and_of_an_empty_list(app: Any) -> None:
    client, model = app
    text = "SELECT 2 NOT IN [NULL, 1] AS a, NULL IN [] AS b, 2 IN ARRAY[NULL, 1] AS c"
    assert await rows(client, text) == [{"a": True, "b": False, "c": False}]
    assert _model(model, text) == [["True", "False", "False"]]
