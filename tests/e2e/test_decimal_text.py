"""Text with an exponent or underscores into a DECIMAL column is what DuckDB's
CAST of that text (a query's WHERE) gives, or refused where the CAST refuses
it: Python's Decimal() stored '1e-38' in a DECIMAL(38,38) and '_1' as 1, and
then no WHERE with the same literal could find, change or delete the row."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows
from tests.private_duck import counted_queries


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE TABLE app.t (id INT PRIMARY KEY, a DECIMAL(38,38), "
                     "b DECIMAL(9,9), c DECIMAL(4,2), d DECIMAL(38,10))")
    await ok(client, "INSERT INTO app.t (id) VALUES (1)")
    return client


REFUSED = [("a", "1e-38"), ("b", "1e-9"), ("c", "123e-3"), ("d", "_1"), ("d", "1_"),
           ("c", "1__0"), ("b", "1.5e-2")]


@pytest.mark.parametrize(("column", "text"), REFUSED)
async def test_text_the_cast_refuses_is_refused_on_every_path(
        app: Any, column: str, text: str) -> None:
    await err(app, f"SELECT CAST('{text}' AS DECIMAL(38,10)) = {column} FROM app.t"
              if column == "d" else f"SELECT count(*) FROM app.t WHERE {column} = '{text}'",
              "INVALID_ARGUMENT")  # what the query says of the same literal
    for statement in (f"INSERT INTO app.t (id, {column}) VALUES (2, '{text}')",
                      f"INSERT INTO app.t (id, {column}) VALUES (2, /* tree */ '{text}')",
                      f"INSERT INTO app.t (id, {column}) SELECT 2, '{text}'",
                      f"UPDATE app.t SET {column} = '{text}' WHERE id = 1"):
        message = await err(app, statement, "INVALID_ARGUMENT")
        assert f"Column '{column}'" in message and text in message, (statement, message)
    assert await rows(app, f"SELECT id, {column} AS v FROM app.t") == [{"id": 1, "v": None}]
    message = await err(app, f"CREATE TABLE app.x (id INT PRIMARY KEY, v DECIMAL(4,2) "
                             f"DEFAULT '{'_1' if column == 'd' else '123e-3'}')",
                        "INVALID_ARGUMENT")
    assert "DEFAULT" in message, message


async def test_text_the_cast_reads_is_stored_as_it_reads_it_and_found(app: Any) -> None:
    texts = [("b", "0.1e-8", ".000000001"), ("d", "1_000", "1000.0000000000"),
             ("c", "1e1", "10.00"), ("d", " 1.5E-2 ", "0.0150000000"), ("c", "1_0.5", "10.50")]
    for n, (column, text, stored) in enumerate(texts, 2):
        await ok(app, f"INSERT INTO app.t (id, {column}) VALUES ({n}, '{text}')")
        assert await rows(app, f"SELECT {column}::VARCHAR AS v FROM app.t WHERE id = {n}") == [
            {"v": stored}]
        assert await rows(app, f"SELECT id FROM app.t WHERE {column} = '{text}'") == [{"id": n}]
        await ok(app, f"UPDATE app.t SET {column} = '{text}' WHERE id = {n}")
        assert (await ok(app, f"DELETE FROM app.t WHERE {column} = '{text}'"))[-1][
            "row_count"] == 1


async def test_a_default_kept_with_an_exponent_still_means_its_number(app: Any) -> None:
    """DEFAULT 0.000000001 is kept as Python's text of it, '1E-9', which
    DuckDB's CAST to DECIMAL(9,9) does not read: it is read as it was kept."""
    await ok(app, "CREATE TABLE app.k (id INT PRIMARY KEY, v DECIMAL(9,9) DEFAULT 0.000000001, "
                  "w DECIMAL(38,38) DEFAULT 0.00000000000000000000000000000000000001)")
    await ok(app, "INSERT INTO app.k (id) VALUES (1)")
    assert await rows(app, "SELECT v::VARCHAR AS v, w::VARCHAR AS w FROM app.k") == [
        {"v": ".000000001", "w": ".00000000000000000000000000000000000001"}]


def test_a_decimal_default_kept_as_text_still_means_what_it_meant() -> None:
    """A catalog or backup manifest may keep '1e-9' (taken before 2026-12-06):
    it is read as it was kept; text that reads no number is refused."""
    import decimal

    from catalog.errors import InvalidArgument
    from storage.types import stored_value

    col = {"name": "v", "type": "DECIMAL", "params": [9, 9]}
    assert stored_value(col, "1e-9") == decimal.Decimal("0.000000001")
    with pytest.raises(InvalidArgument, match="Column 'v'"):
        stored_value(col, "e_")


async def test_a_statements_texts_are_cast_in_one_query_a_column(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each text was one query to the private DuckDB: 30,000 rows of '1e0'
    took 10 s (30 times plain digits), past the statement timeout, holding
    the table's writers. Now a statement's texts go in one query a column,
    for INSERT ... SELECT, VALUES and UPDATE, and each is what it was."""
    queries = counted_queries(monkeypatch)
    await ok(app, "INSERT INTO app.t (id, c, d) SELECT i, (i % 90) || 'e-1', i || '_0' "
                  "FROM range(2, 2002) r(i)")
    await ok(app, "INSERT INTO app.t (id, c) VALUES (5000, '1e1'), (5001, '2e1'), (5002, '1e1')")
    await ok(app, "UPDATE app.t SET d = id || 'e0' WHERE id >= 1000 AND id < 2000")
    assert len(queries) <= 6, len(queries)
    got = await rows(app, "SELECT id, c::VARCHAR AS c, d::VARCHAR AS d FROM app.t "
                          "WHERE id IN (2, 91, 999, 1500, 2001, 5001) ORDER BY id")
    want = {2: ("0.20", "20.0000000000"), 91: ("0.10", "910.0000000000"),
            999: ("0.90", "9990.0000000000"), 1500: ("6.00", "1500.0000000000"),
            2001: ("2.10", "20010.0000000000"), 5001: ("20.00", None)}
    assert {r["id"]: (r["c"], r["d"]) for r in got} == want
    await err(app, "INSERT INTO app.t (id, c) VALUES (6000, '1e1'), (6001, '123e-3')",
              "INVALID_ARGUMENT")  # one the cast refuses still refuses the statement
    assert await rows(app, "SELECT count(*) AS n FROM app.t WHERE id >= 6000") == [{"n": 0}]
