"""Literals mean what DuckDB reads in them (sqlgrammar/literals.py).

sqlglot read `T 'x'::U` as CAST(CAST('x' AS U) AS T), the user's cast turned
inside out (DuckDB: `(T 'x')::U`), and wrote `.5` back as 0.5 (DuckDB's `.5`
is a DECIMAL(1,1) whose text is '.5'). The model is DuckDB itself, in process,
over a plain table holding the same rows; each statement runs on both and the
rows are compared."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from tests.helpers import ok, rows

SETUP = ("CREATE TABLE lit.t (k INT PRIMARY KEY, ts TIMESTAMP, s TEXT, d DOUBLE); "
         "INSERT INTO lit.t VALUES (1, '2024-02-05 08:00:00', 'rate .5', 1), "
         "(2, '2024-02-05 09:00:00', 'rate 0.5', 2), (3, '2024-02-05 10:00:00', 'c', 3)")
TABLE = "SELECT k, CAST(ts AS VARCHAR) AS ts, s, d FROM lit.t ORDER BY k"


@pytest.fixture
async def lit(client: Any) -> tuple[Any, duckdb.DuckDBPyConnection]:
    await ok(client, "CREATE NAMESPACE lit")
    await ok(client, SETUP)
    model = duckdb.connect()
    model.execute("LOAD icu; SET TimeZone = 'UTC'; CREATE SCHEMA lit")
    model.execute(SETUP)
    return client, model


def _model(model: duckdb.DuckDBPyConnection, text: str) -> list[list[Any]]:
    return [[None if v is None else str(v) for v in r] for r in model.execute(text).fetchall()]


async def _cairn(client: Any, text: str) -> list[list[Any]]:
    got = await rows(client, text)
    return [[None if v is None else str(v) for v in (r.values() if isinstance(r, dict) else r)]
            for r in got]


# Each: the expression, typeof() and its text as DuckDB gives them.
TYPED = [
    ("TIMESTAMPTZ '2024-02-05 10:30:00+02'::TIMESTAMP", "TIMESTAMP", "2024-02-05 08:30:00"),
    ("TIMESTAMP '2024-02-05 10:30:00'::DATE", "DATE", "2024-02-05"),
    ("DATE '2024-01-01'::VARCHAR", "VARCHAR", "2024-01-01"),
    ("TIME '10:30'::VARCHAR", "VARCHAR", "10:30:00"),
    ("DOUBLE '1.5'::INT", "INTEGER", "2"),
    ("TIMESTAMP '2024-02-05 10:30'::DATE - DATE '2024-02-01'", "BIGINT", "4"),
    ("INTEGER '12'::VARCHAR", "VARCHAR", "12"),
    ("UUID '00000000-0000-0000-0000-000000000001'::VARCHAR", "VARCHAR",
     "00000000-0000-0000-0000-000000000001"),
    ("BLOB 'ab'::VARCHAR", "VARCHAR", "ab"),
    ("TIMESTAMP '2024-02-05 10:30:00.5'::TIMESTAMP_S", "TIMESTAMP_S", "2024-02-05 10:30:01"),
    ("DOUBLE '1.5'::INT::VARCHAR", "VARCHAR", "2"),
    ("-DOUBLE '1.5'::INT", "INTEGER", "-2"),
    ("INT[] '[1, 2]'[2]", "INTEGER", "2"),
    ("VARCHAR 'a,b'.split(',')[2]", "VARCHAR", "b"),
    ("JSON '{\"a\": 1}'::VARCHAR", "VARCHAR", '{"a": 1}'),
    ("JSON '{\"a\": 1}'", "JSON", '{"a": 1}'),
    ("DECIMAL(4,1) '1.25'::VARCHAR", "VARCHAR", "1.3"),
]


@pytest.mark.parametrize("expression,kind,text", TYPED)
async def test_a_cast_after_a_typed_literal_casts_the_literal(lit: Any, expression: str,
                                                              kind: str, text: str) -> None:
    """`T 'x'::U` is `(T 'x')::U`: sqlglot ran CAST(CAST('x' AS U) AS T)."""
    client, model = lit
    query = f"SELECT typeof({expression}) AS t, ({expression})::VARCHAR AS v"
    assert await _cairn(client, query) == _model(model, query) == [[kind, text]], query


@pytest.mark.parametrize("stmt", [
    "DELETE FROM lit.t WHERE ts < TIMESTAMPTZ '2024-02-05 10:30:00+02'::TIMESTAMP",
    "UPDATE lit.t SET s = TIMESTAMP '2024-02-05 10:30:00'::DATE WHERE k = 3",
    "UPDATE lit.t SET d = DOUBLE '2.5'::INT / 2 WHERE ts >= TIMESTAMP '2024-02-05 09:30'::DATE",
    "DELETE FROM lit.t WHERE s = DATE '2024-02-05'::VARCHAR || '' OR d = -DOUBLE '1.5'::INT + 4",
    "INSERT INTO lit.t VALUES (4, TIMESTAMPTZ '2024-02-05 10:30:00+02'::TIMESTAMP, "
    "TIMESTAMP '2024-02-05 10:30:00'::DATE, DOUBLE '1.5'::INT)",
    "INSERT INTO lit.t VALUES (5, TIMESTAMP '2024-02-05 10:30:00'::DATE, TIME '10:30'::VARCHAR, "
    "-DOUBLE '2.5'::INT), (6, NULL, INT[] '[7, 8]'[2], INTEGER '12'::VARCHAR::DOUBLE / 5)",
])
async def test_dml_with_a_cast_typed_literal_changes_duckdbs_rows(lit: Any, stmt: str) -> None:
    """The DELETE removed all three rows (cutoff 10:30 read as UTC, not
    08:30); the UPDATE stored '2024-02-05 00:00:00', not '2024-02-05'."""
    client, model = lit
    await ok(client, stmt)
    model.execute(stmt)
    assert await _cairn(client, TABLE) == _model(model, TABLE), stmt


NUMBERS = [".5", "-.5", "+.5", ".0", ".5_5", "- -.5", "5.", "1.50", "1e3", "1_000", "00.5",
           "007", ".5e1", ".25 * 2", "[.5, .25][1]", "{'a': .5}", ".5::VARCHAR", "round(.5)"]


@pytest.mark.parametrize("number", NUMBERS)
async def test_a_number_keeps_its_type_and_text_as_written(lit: Any, number: str) -> None:
    """`.5` is DECIMAL(1,1), text '.5'; sqlglot's 0.5 is DECIMAL(2,1), '0.5'."""
    client, model = lit
    query = f"SELECT typeof({number}) AS t, ({number})::VARCHAR AS v, 'x' || {number} AS c"
    assert await _cairn(client, query) == _model(model, query), query


@pytest.mark.parametrize("stmt", ["DELETE FROM lit.t WHERE s = 'rate ' || .5",
                                  "UPDATE lit.t SET s = s || -.25 WHERE k = 2",
                                  "INSERT INTO lit.t (k, s) VALUES (4, 'x' || .5)",
                                  "INSERT INTO lit.t (k, s, d) VALUES (5, .5, .5)",
                                  "UPDATE lit.t SET s = .5, d = .5 + .25 WHERE k = 3"])
async def test_dml_with_a_leading_point_number_changes_duckdbs_rows(lit: Any, stmt: str) -> None:
    """`WHERE s = 'rate ' || .5` deleted the row 'rate 0.5', not 'rate .5'."""
    client, model = lit
    await ok(client, stmt)
    model.execute(stmt)
    assert await _cairn(client, TABLE) == _model(model, TABLE), stmt
