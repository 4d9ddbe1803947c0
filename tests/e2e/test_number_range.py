"""Numbers that do not fit their column are refused, never stored changed:
1e309 into DOUBLE used to become inf, 1e-400 became 0, 1e39 into REAL became
inf, and a JSON value with NaN was stored though no JSON reader takes it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.m (id INT PRIMARY KEY, d DOUBLE, r REAL, j JSON)")
    return client


@pytest.mark.parametrize("text", [
    "INSERT INTO app.m (id, d) VALUES (1, 1e309)",
    "INSERT INTO app.m (id, d) VALUES (1, -1e309)",
    "INSERT INTO app.m (id, d) VALUES (1, 1e-400)",
    "INSERT INTO app.m (id, d) VALUES (1, '1e309')",
    "INSERT INTO app.m (id, r) VALUES (1, 1e39)",
    "INSERT INTO app.m (id, r) VALUES (1, 1e-46)",
    "INSERT INTO app.m (id, d) VALUES (2, 1.5), (1, 1e309)",
    "INSERT INTO app.m (id, j) VALUES (1, '{\"a\": NaN}')",
    "INSERT INTO app.m (id, j) VALUES (1, '[Infinity]')",
])
async def test_out_of_range_is_refused_and_nothing_stored(app: Any, text: str) -> None:
    message = await err(app, text, "INVALID_ARGUMENT")
    assert "out of range" in message or "cannot take" in message or (
        "NaN and Infinity are no JSON numbers" in message), message
    assert await rows(app, "SELECT count(*) AS n FROM app.m") == [{"n": 0}]


async def test_what_fits_is_stored_as_written(app: Any) -> None:
    await ok(app, "INSERT INTO app.m (id, d, r) VALUES (1, 1.7e308, 3.4e38), (2, 5e-324, 1e-44), "
                  "(3, 'NaN', 'Infinity'), (4, '-Infinity', 0)")
    got = await rows(app, "SELECT id, d::VARCHAR AS d, r::VARCHAR AS r FROM app.m ORDER BY id")
    assert [g["id"] for g in got] == [1, 2, 3, 4]
    assert float(got[0]["d"]) == 1.7e308 and float(got[0]["r"]) > 3.3e38
    assert float(got[1]["d"]) == 5e-324 and 0 < float(got[1]["r"]) < 1.1e-44
    assert got[2]["d"].lower() == "nan" and got[2]["r"].lower() in ("inf", "infinity")
    assert got[3]["d"].lower() in ("-inf", "-infinity") and float(got[3]["r"]) == 0.0


async def test_reals_largest_and_smallest_as_printed_are_taken_back(app: Any) -> None:
    """What a REAL's extremes print as (the shortest text that reads back as
    them) is a little past them as a double, and rounds back to them: it was
    refused as out of range. Only what rounds past them is."""
    await ok(app, "INSERT INTO app.m (id, r) VALUES (1, 3.4028235e+38), (2, '-3.4028235e38'), "
                  "(3, 1e-45), (4, 3.4028235677973362e38)")
    got = await rows(app, "SELECT id, r::DOUBLE AS r FROM app.m ORDER BY id")  # widened exactly
    assert [abs(g["r"]) for g in got] == [3.4028234663852886e38, 3.4028234663852886e38,
                                                 1.401298464324817e-45, 3.4028234663852886e38]
    for text in ["INSERT INTO app.m (id, r) VALUES (5, 3.4028235677973366e38)",
                 "INSERT INTO app.m (id, r) VALUES (5, 7.006492321624085e-46)"]:
        assert "out of range" in await err(app, text, "INVALID_ARGUMENT")


async def test_update_to_a_literal_no_double_holds_is_refused(app: Any) -> None:
    await ok(app, "INSERT INTO app.m (id, d) VALUES (1, 2.5)")
    for text in ["UPDATE app.m SET d = 1e309", "UPDATE app.m SET d = -1E+400 WHERE id = 1",
                 "UPDATE app.m SET d = 1e-400"]:
        message = await err(app, text, "INVALID_ARGUMENT")
        assert "out of range for DOUBLE" in message, message
    assert await rows(app, "SELECT d FROM app.m") == [{"d": 2.5}]


@pytest.mark.parametrize("text", [
    f"INSERT INTO app.m (id, d) VALUES (1, {'9' * 5000})",  # int() raised past 4,300 digits: a 500
    f"INSERT INTO app.m (id, d) VALUES (-{'9' * 5000}, 1)",
    f"INSERT INTO app.m (id, d) VALUES (1, 0.{'1' * 1000})",
    f"SELECT * FROM app.m WHERE id = {'9' * 5000}",
    f"UPDATE app.m SET d = {'9' * 1001} WHERE id = 1",
])
async def test_a_numeric_literal_of_over_1000_characters_is_refused(app: Any, text: str) -> None:
    message = await err(app, text, "INVALID_ARGUMENT")
    assert "characters; at most 1000" in message, message
    assert await rows(app, "SELECT count(*) AS n FROM app.m") == [{"n": 0}]


async def test_long_numbers_that_fit_are_stored(app: Any) -> None:
    digits = "3." + "1415926535" * 10  # 102 characters: past the fast path's 100
    await ok(app, f"INSERT INTO app.m (id, d) VALUES (1, {digits})")
    assert await rows(app, "SELECT d FROM app.m") == [{"d": float(digits)}]


@pytest.mark.parametrize("value", ["\u0661\u0662\u0663", "\uff11\uff12", "1\u0662"])
@pytest.mark.parametrize("column", ["id", "d", "r"])
async def test_digits_of_other_scripts_are_not_numbers(app: Any, column: str, value: str) -> None:
    """Python's int() and float() read '\u0661\u0662\u0663' as 123; DuckDB and
    PostgreSQL refuse it, and so does Cairn (it was stored as 123)."""
    values = f"(1, '{value}')" if column != "id" else f"('{value}', 1)"
    other = "d" if column == "id" else "id"
    cols = f"({column}, {other})" if column == "id" else f"(id, {column})"
    await err(app, f"INSERT INTO app.m {cols} VALUES {values}", "INVALID_ARGUMENT")
    assert await rows(app, "SELECT count(*) AS n FROM app.m") == [{"n": 0}]
