"""What DuckDB refuses, Cairn refuses too, rather than running the meaning
sqlglot gave it (sqlgrammar/prefix_ops.py): `~ 2 ^ 3` (DuckDB: `~ (2 ^ 3)`,
no ~ for a DOUBLE) ran as `(~2) ^ 3`, -27; a prefix `+` (DuckDB has it for
numbers only) was dropped, so `+'1' || 'x'` ran as `'1' || 'x'`. The model
is DuckDB itself, in process, over a plain table holding the same rows."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from tests.helpers import err, ok, rows

SETUP = ("CREATE TABLE ref.t (k INT PRIMARY KEY, s TEXT, b BOOLEAN); "
         "INSERT INTO ref.t VALUES (1, '1', TRUE), (2, '2', FALSE)")
TABLE = "SELECT k, s, b FROM ref.t ORDER BY k"


@pytest.fixture
async def ref(client: Any) -> tuple[Any, duckdb.DuckDBPyConnection]:
    await ok(client, "CREATE NAMESPACE ref")
    await ok(client, SETUP)
    model = duckdb.connect()
    model.execute("CREATE SCHEMA ref")
    model.execute(SETUP)
    return client, model


def _model(model: duckdb.DuckDBPyConnection, text: str) -> list[list[Any]]:
    return [[None if v is None else str(v) for v in r] for r in model.execute(text).fetchall()]


async def _cairn(client: Any, text: str) -> list[list[Any]]:
    got = await rows(client, text)
    return [[None if v is None else str(v) for v in r.values()] for r in got]


@pytest.mark.parametrize("stmt,says", [
    ("SELECT ~ 2 ^ 3 AS x", "`~ a ^ b` is `~ (a ^ b)`"),
    ("SELECT ~ 3 ** 2 AS x", "`~ a ^ b` is `~ (a ^ b)`"),
    ("SELECT - ~k ^ 2 AS x FROM ref.t", "`~ a ^ b` is `~ (a ^ b)`"),
    ("DELETE FROM ref.t WHERE ~ k ^ 2 < 0", "`~ a ^ b` is `~ (a ^ b)`"),
    ("SELECT +'1' || 'x' AS x", "prefix operator +"),
    ("SELECT + TRUE AND FALSE AS x", "prefix operator +"),
    ("UPDATE ref.t SET s = +s || 'x' WHERE k = 1", "prefix operator +"),
    ("DELETE FROM ref.t WHERE +b", "prefix operator +"),
])
async def test_a_form_duckdb_refuses_is_refused(ref: Any, stmt: str, says: str) -> None:
    client, model = ref
    with pytest.raises(duckdb.Error):
        model.execute(stmt).fetchall()
    assert says in await err(client, stmt, "INVALID_ARGUMENT")
    assert await _cairn(client, TABLE) == _model(model, TABLE)


@pytest.mark.parametrize("stmt", [
    "SELECT (~2) ^ 3 AS x", "SELECT +5 AS a, +-5 AS b, +.5 AS c, 1 + +2 AS d, +1e3 AS e",
    "SELECT k FROM ref.t WHERE k = +2", "SELECT (~(k + 1)) ^ 2 AS x FROM ref.t"])
async def test_the_forms_duckdb_takes_still_run_as_duckdb_runs_them(ref: Any, stmt: str) -> None:
    client, model = ref
    assert await _cairn(client, stmt) == _model(model, stmt), stmt
