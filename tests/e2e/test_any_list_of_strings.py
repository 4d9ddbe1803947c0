"""`c = ANY(['1e-9'])` over HTTP with a DECIMAL c: DuckDB compares no list of
strings with a DECIMAL (a Binder Error, where `c IN ('1e-9')` casts each
string, and pgwire's `c = ANY(%s)` casts its list's texts). It is a 400
INVALID_ARGUMENT naming the cast that makes it work, and that cast answers as
the IN list does. Its words said only "an explicit cast is required"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import ok, rows, sql


@pytest.mark.parametrize(("where", "kind"), [
    ("c = ANY(['1e-9'])", "DECIMAL(10,2)"), ("c <> ALL(['1', NULL])", "DECIMAL(10,2)"),
    ("c > ANY(['0.5'])", "DECIMAL(10,2)"), ("c IN (SELECT '1')", "DECIMAL(10,2)"),
    ("k = ANY(['1'])", "INTEGER")])
async def test_a_list_of_strings_against_a_number_names_the_cast(
        client: Any, where: str, kind: str) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT, c DECIMAL(10,2));"
                     "INSERT INTO app.t VALUES (1, 0), (2, 5)")
    status, body = await sql(client, f"SELECT k FROM app.t WHERE {where}")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    assert f"CAST(['1'] AS {kind}[])" in body["error"]["message"], body
    assert "IN ('1', ...)" in body["error"]["message"], body


async def test_the_named_cast_answers_as_the_in_list(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT, c DECIMAL(10,2));"
                     "INSERT INTO app.t VALUES (1, 0), (2, 5), (3, NULL)")
    for texts in ("'1e-9'", "'1e-9', '5'", "'5', NULL", "NULL"):
        want = await rows(client, f"SELECT k FROM app.t WHERE c IN ({texts}) ORDER BY k")
        assert await rows(client, f"SELECT k FROM app.t WHERE c = ANY(CAST([{texts}] AS "
                                  "DECIMAL(10,2)[])) ORDER BY k") == want, texts
    assert await rows(client, "SELECT k FROM app.t WHERE c = ANY(CAST([] AS DECIMAL(10,2)[]))"
                      ) == []
