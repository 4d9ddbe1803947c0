"""A standalone `!` is DuckDB's postfix factorial; sqlglot read it as NOT
(sqlgrammar/factorial.py). `SELECT 3 ! IN (1, 2)` is false to DuckDB
((3!) IN (1, 2)) and was true in Cairn (NOT 3 IN (1, 2)); `DELETE ... WHERE
k ! IN (1, 2)` deleted exactly the rows DuckDB keeps. Such a `!` is refused
now; DuckDB's operators `!=`, `!~~`, `!~~*`, `!~`, `!~*`, and a `!` in a
string, a quoted name, a comment or a dollar-quoted string, answer as
DuckDB answers them. The model is DuckDB itself over the same rows."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from tests.helpers import ok, rows, sql

SETUP = "CREATE TABLE app.t (k INT PRIMARY KEY, v TEXT); " \
        "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')"
TABLE = "SELECT k, v FROM app.t ORDER BY k"

# Each is answered by DuckDB, with `!` the factorial; sqlglot read NOT.
BANGS = ["k ! IN (1, 2)", "k ! IN [1, 2]", "k ! IN (SELECT 6)", "k ! IS NULL",
         "k ! IS NOT NULL", "k ! ISNULL", "k ! NOTNULL", "k ! IS TRUE", "k ! IS NOT FALSE",
         "k ! IS NOT DISTINCT FROM 6", "k ! IS DISTINCT FROM 6", "k ! BETWEEN 2 AND 6",
         "k!IN(1, 2)", "k !\nIN (1, 2)", "k ! /* c */ IN (1, 2)", "k ! = 6"]
# DuckDB's operators that start with `!`, and `!` where it is no operator.
KEPT = ["v != 'a'", "v!='a'", "v !~~ 'a%'", "v!~~*'A%'", "v !~ '^[ab]'", "v !~* '^[AB]'",
        "v = '!'", "v || '! IN (1)' = 'a! IN (1)'", "$$ ! IN $$ = ' ! IN '",
        "$t$k ! IN (1)$t$ <> v", "v /* ! IN */ = 'b'", "v IS NOT NULL -- k ! IN\n AND k > 2"]


@pytest.fixture
async def app(client: Any) -> tuple[Any, duckdb.DuckDBPyConnection]:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, SETUP)
    model = duckdb.connect()
    model.execute("CREATE SCHEMA app")
    model.execute(SETUP)
    return client, model


def _refused(status: int, body: dict[str, Any]) -> None:
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert "factorial(x)" in body["error"]["message"] and " NOT " in body["error"]["message"]


@pytest.mark.parametrize("form", BANGS)
async def test_a_factorial_bang_is_refused_in_a_select(app: Any, form: str) -> None:
    client, model = app
    text = f"SELECT k, {form} AS v FROM app.t ORDER BY k"
    assert model.execute(text).fetchall()  # DuckDB answers it (the factorial)
    _refused(*await sql(client, text))


@pytest.mark.parametrize("form", ["k ! IN (1, 2)", "k ! NOTNULL", "k ! BETWEEN 2 AND 6"])
async def test_a_delete_and_an_update_by_it_change_no_row(app: Any, form: str) -> None:
    """DuckDB deletes k = 1, 2 by `k ! IN (1, 2)` (1! = 1, 2! = 2); Cairn
    deleted 3 and 4. Refused, every row is left as it was."""
    client, model = app
    before = await rows(client, TABLE)
    for text in (f"UPDATE app.t SET v = 'changed' WHERE {form}", f"DELETE FROM app.t WHERE {form}"):
        model.execute("BEGIN")
        model.execute(text)  # DuckDB runs it
        model.execute("ROLLBACK")
        _refused(*await sql(client, text))
        assert await rows(client, TABLE) == before, text


async def test_the_position_is_the_bang_s(app: Any) -> None:
    client, _ = app
    status, body = await sql(client, "SELECT 1;\nDELETE FROM app.t\n  WHERE k ! IN (1, 2)")
    _refused(status, body)
    assert (body["error"]["line"], body["error"]["column"]) == (3, 11), body
    assert len(await rows(client, TABLE)) == 4


@pytest.mark.parametrize("form", ["! (k = 1)", "!TRUE", "(k = 1) ! IS TRUE",
                                  "k ! ~~ '6'", "v !~~~ 'a'", "k <!~ 'a'", "v !~- 'a'"])
async def test_what_duckdb_refuses_is_refused(app: Any, form: str) -> None:
    """A prefix `!` is no function to DuckDB, nor the factorial of a BOOLEAN or
    a LIKE of a number, and `!~~~` `<!~` `!~-` no operator; sqlglot read NOT
    (NOT GLOB, `< NOT ~`, `NOT REGEXP_MATCHES(a, -b)`), and Cairn ran it."""
    client, model = app
    text = f"SELECT k, {form} AS v FROM app.t ORDER BY k"
    with pytest.raises(duckdb.Error):
        model.execute(text)
    _refused(*await sql(client, text))


@pytest.mark.parametrize("form", KEPT)
async def test_duckdb_s_bang_operators_and_a_quoted_bang_answer_as_duckdb(
        app: Any, form: str) -> None:
    client, model = app
    text = f"SELECT k FROM app.t WHERE {form} ORDER BY k"
    want = [{"k": k} for (k,) in model.execute(text).fetchall()]
    assert await rows(client, text) == want, text
    delete = f"DELETE FROM app.t WHERE {form}"
    model.execute(delete)
    await ok(client, delete)
    assert await rows(client, TABLE) == [{"k": k, "v": v} for k, v in
                                         model.execute(TABLE).fetchall()], delete
