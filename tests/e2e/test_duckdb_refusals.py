"""What DuckDB refuses, Cairn refuses too, rather than running the meaning
sqlglot gave it (sqlgrammar/prefix_ops.py, calls.py): `~ 2 ^ 3` (DuckDB:
`~ (2 ^ 3)`, no ~ for a DOUBLE) ran as `(~2) ^ 3`, -27; a prefix `+` (DuckDB
has it for numbers only) was dropped, so `+'1' || 'x'` ran as `'1' || 'x'`;
a function of another dialect (iif, nvl, initcap) ran as sqlglot's DuckDB
version of it. The model is DuckDB itself, in process, over a plain table
holding the same rows."""

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
    "SELECT FALSE IS NOT TRUE || 'x' AS x", "SELECT b IS TRUE::INT AS x FROM ref.t",
    "UPDATE ref.t SET s = b IS NOT FALSE || '!' WHERE k = 1",
    "DELETE FROM ref.t WHERE (b IS NOT TRUE || '') = 'true'"])
async def test_an_operator_after_is_true_runs_as_duckdb_runs_it(ref: Any, stmt: str) -> None:
    """DuckDB reads `a IS NOT TRUE || 'x'` as `(a IS NOT TRUE) || 'x'`;
    sqlglot read `a IS NOT (TRUE || 'x')` (refused since round 12). Now read
    as DuckDB reads it (sqlgrammar/postfix_ops.py)."""
    client, model = ref
    if stmt.startswith("SELECT"):
        assert await _cairn(client, stmt) == _model(model, stmt), stmt
    else:
        model.execute(stmt)
        await ok(client, stmt)
        assert await _cairn(client, TABLE) == _model(model, TABLE), stmt


@pytest.mark.parametrize("stmt", [
    "SELECT 4 + 2 ^ ~ 1 AS x", "SELECT 2 ** ~ k + 1 AS x FROM ref.t",
    "DELETE FROM ref.t WHERE 2 ^ ~ k + 1 < 0.2"])
async def test_a_power_of_a_bitwise_not_is_refused(ref: Any, stmt: str) -> None:
    """DuckDB reads `4 + 2 ^ ~ 1` as `(4 + 2) ^ ~1` and `2 ^ ~ k + 1` as
    `2 ^ ~(k + 1)`; sqlglot wrote POWER(2, ~1) (+ 4), whose bounds DuckDB keeps."""
    client, model = ref
    assert "`a ^ ~ b" in await err(client, stmt, "INVALID_ARGUMENT")
    assert await _cairn(client, TABLE) == _model(model, TABLE)


@pytest.mark.parametrize("stmt", [
    "SELECT (~2) ^ 3 AS x", "SELECT +5 AS a, +-5 AS b, +.5 AS c, 1 + +2 AS d, +1e3 AS e",
    "SELECT k FROM ref.t WHERE k = +2", "SELECT (~(k + 1)) ^ 2 AS x FROM ref.t",
    # names of DuckDB's grammar, not of its functions (a regress pass: refused)
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY k) AS x FROM ref.t",
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY k) AS x FROM ref.t",
    "SELECT mode() WITHIN GROUP (ORDER BY s) AS x FROM ref.t"])
async def test_the_forms_duckdb_takes_still_run_as_duckdb_runs_them(ref: Any, stmt: str) -> None:
    client, model = ref
    assert await _cairn(client, stmt) == _model(model, stmt), stmt


@pytest.mark.parametrize("stmt,name", [
    ("SELECT iif(k = 1, 'a', 'b') AS x FROM ref.t", "iif"),
    ("SELECT nvl(NULL, 2) AS x", "nvl"),
    ("SELECT array_join([1, 2], '-') AS x", "array_join"),
    ("SELECT initcap('hello world') AS x", "initcap"),
    ("SELECT CONVERT(1, VARCHAR) AS x", "convert"),
    ("UPDATE ref.t SET s = initcap(s) WHERE k = 1", "initcap"),
    ("DELETE FROM ref.t WHERE nvl(s, '') = '1'", "nvl"),
    ("UPDATE ref.t SET s = 'x' WHERE iif(b, k, 0) = 1", "iif"),
])
async def test_a_function_duckdb_does_not_have_is_refused(ref: Any, stmt: str, name: str) -> None:
    """sqlglot rewrote these into DuckDB's nearest form (CASE WHEN, COALESCE,
    array_to_string, ...); they go to DuckDB as written, which refuses them."""
    client, model = ref
    with pytest.raises(duckdb.CatalogException):
        model.execute(stmt).fetchall()
    message = await err(client, stmt, "INVALID_ARGUMENT")
    assert f"with name {name} does not exist" in message, message
    assert await _cairn(client, TABLE) == _model(model, TABLE)


async def test_a_slice_right_after_a_cast_is_refused_as_duckdb_refuses_it(ref: Any) -> None:
    """`'abc'::VARCHAR[1:2]`: DuckDB's parser asks for parentheses; sqlglot
    ran CAST('abc' AS VARCHAR)[1:2]."""
    client, model = ref
    stmt = "UPDATE ref.t SET s = s::VARCHAR[1:1] WHERE k = 2"
    with pytest.raises(duckdb.ParserException):
        model.execute(stmt)
    assert "Wrap the cast in parentheses" in await err(client, stmt, "PARSE_ERROR")
    await ok(client, "UPDATE ref.t SET s = (s::VARCHAR)[1:1] || 'y' WHERE k = 2")
    model.execute("UPDATE ref.t SET s = (s::VARCHAR)[1:1] || 'y' WHERE k = 2")
    assert await _cairn(client, TABLE) == _model(model, TABLE)
