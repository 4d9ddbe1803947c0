"""JSON and TEXT values as DuckDB gives them, on every path, and JSON answers
that are the stored text. Found by trying: `INSERT ... VALUES (1.5)` into a
JSON column stored the string "1.5" (a BLOB in a struct Python's `b'x'`), a
TEXT column took `1e5` as '1E+5' (DuckDB: '100000.0'); an HTTP answer
re-parsed JSON (duplicate keys lost, 0.1000000000000000055511151231257827
became 0.1, -0 became 0) and failed on a deep value a write had accepted;
`{"k":"\\ud800"}` and NaN were stored, and the server's own JSON functions
then failed on them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage.jsoncheck import MAX_JSON_DEPTH
from tests.helpers import err, ok, rows


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.j (id INT PRIMARY KEY, js JSON, "
                     "tx TEXT)")
    return client


async def raw_answer(client: Any, text: str) -> str:
    resp = await client.post("/api/sql", json={"sql": text})
    return str(await resp.text())


NUMBERS = ["1.5", "1e5", "-1.5", "-0.0", "0.1e1", "1e-7", "1.50", "12345678901234567.89",
           "99999999999999999999", "-(2.5)"]


@pytest.mark.parametrize("number", NUMBERS)
async def test_a_number_is_stored_as_duckdbs_cast_gives_it(app: Any, number: str) -> None:
    """Into JSON: a JSON number as CAST(n AS JSON) writes it; into TEXT, as
    CAST(n AS VARCHAR) spells it; by VALUES, INSERT ... SELECT and UPDATE alike."""
    await ok(app, f"INSERT INTO app.j VALUES (1, {number}, {number});"
                  f"INSERT INTO app.j SELECT 2, {number}, {number};"
                  "INSERT INTO app.j VALUES (3, NULL, NULL);"
                  f"UPDATE app.j SET js = {number}, tx = {number} WHERE id = 3")
    want = (await rows(app, f"SELECT CAST({number} AS JSON)::VARCHAR AS j, "
                            f"CAST({number} AS VARCHAR) AS t"))[0]
    got = await rows(app, "SELECT id, js::VARCHAR AS j, json_type(js) AS jt, tx FROM app.j "
                          "ORDER BY id")
    assert [(r["j"], r["tx"]) for r in got] == [(want["j"], want["t"])] * 3
    assert {r["jt"] for r in got} <= {"DOUBLE", "UBIGINT", "BIGINT", "HUGEINT"}, got


@pytest.mark.parametrize("number", [n for n in NUMBERS if "(" not in n] + ["1e3", "5e0", "-0e0"])
async def test_a_number_default_is_stored_as_duckdbs_cast_gives_it(app: Any, number: str) -> None:
    """A JSON column's DEFAULT was kept as Python's Decimal text (`1e3` as 1E+3,
    `1.50` as 1.50, `-0.0` as -0.0), a TEXT one's lost its exponent (`5e0` as
    5): INSERT ... VALUES of the same literal stores CAST(n AS JSON) (1000.0,
    1.5, 0.0) and CAST(n AS VARCHAR) (5.0)."""
    await ok(app, f"CREATE TABLE app.d (id INT PRIMARY KEY, js JSON DEFAULT {number}, "
                  f"tx TEXT DEFAULT {number}); INSERT INTO app.d (id) VALUES (1);"
                  f"INSERT INTO app.d VALUES (2, {number}, {number})")
    want = (await rows(app, f"SELECT CAST({number} AS JSON)::VARCHAR AS j, "
                            f"CAST({number} AS VARCHAR) AS t"))[0]
    got = await rows(app, "SELECT js::VARCHAR AS j, tx FROM app.d ORDER BY id")
    assert [(r["j"], r["tx"]) for r in got] == [(want["j"], want["t"])] * 2


@pytest.mark.parametrize("value", [
    "0.1::REAL", "1e20::DOUBLE", "TIMESTAMP '2024-06-01 12:00:00.5'", "make_date(2024, 6, 1)",
    "{'a': 1.5, 'b': [1, 2]}", "[1.5, NULL]", "INTERVAL 1 DAY", "1.5 + 0", "true", "12::BIGINT",
    "0.5::DECIMAL(1,1)", "TIMESTAMPTZ '2024-06-01 12:00:00+05:30'"])
async def test_a_computed_value_is_stored_as_duckdbs_cast_gives_it(app: Any, value: str) -> None:
    """A value an expression computes (`VALUES (0.1::REAL)`, a query's
    column, an UPDATE's) into TEXT was Python's text of it
    ('0.10000000149011612', '2024-06-01 12:00:00.500000', a dict's repr)."""
    await ok(app, f"INSERT INTO app.j VALUES (1, {value}, {value});"
                  f"INSERT INTO app.j SELECT 2, {value}, {value};"
                  "INSERT INTO app.j VALUES (3, NULL, NULL);"
                  f"UPDATE app.j SET js = {value}, tx = {value} WHERE id = 3")
    want = (await rows(app, f"SELECT CAST({value} AS JSON)::VARCHAR AS j, "
                            f"CAST({value} AS VARCHAR) AS t"))[0]
    got = await rows(app, "SELECT js::VARCHAR AS j, tx FROM app.j ORDER BY id")
    assert [(r["j"], r["tx"]) for r in got] == [(want["j"], want["t"])] * 3


async def test_nested_values_are_duckdbs_json_of_them(app: Any) -> None:
    value = ("{'price': 9.99, 'tags': [1.5, 2.5], 'b': 'x'::BLOB, 'z': '\\xFF'::BLOB, "
             "'t': TIMESTAMP '2024-06-01 12:00:00', 'm': MAP {1: 2.5}}")
    await ok(app, f"INSERT INTO app.j (id, js) VALUES (1, {value});"
                  f"INSERT INTO app.j (id, js) SELECT 2, {value};"
                  f"INSERT INTO app.j (id) VALUES (3); UPDATE app.j SET js = {value} WHERE id = 3")
    want = (await rows(app, f"SELECT CAST({value} AS JSON)::VARCHAR AS j"))[0]["j"]
    assert '"price":9.99' in want and '"b":"x"' in want
    got = await rows(app, "SELECT js::VARCHAR AS j FROM app.j ORDER BY id")
    assert [r["j"] for r in got] == [want] * 3


async def test_a_json_answer_is_the_stored_text(app: Any) -> None:
    stored = ['{"a":1,"a":2}', "0.1000000000000000055511151231257827", "-0",
              '{"amount": 12345678901234567.89}', "null", "[1e-400, 1E+2]"]
    values = ", ".join(f"({i}, '{v}')" for i, v in enumerate(stored))
    await ok(app, f"INSERT INTO app.j (id, js) VALUES {values}, (99, NULL)")
    answer = await raw_answer(app, "SELECT js FROM app.j ORDER BY id")
    assert "".join(f'{{"js":{v}}},' for v in stored) + '{"js":null}' in answer, answer
    # An error's body carries the results before it, JSON as stored too.
    answer = await raw_answer(app, "SELECT js FROM app.j WHERE id = 0; SELECT nope")
    assert '{"js": {"a":1,"a":2}}' in answer and json.loads(answer)["status"] == "error", answer
    # Text that is not JSON in a column named like one (any query can make it) is a string.
    answer = await raw_answer(app, "SELECT 'not json' AS js FROM app.j WHERE id = 0")
    assert '"rows":[{"js":"not json"}]' in answer, answer
    # JSON null and SQL NULL read alike over HTTP; IS NULL tells them apart.
    assert await rows(app, "SELECT id, js IS NULL AS sql_null FROM app.j WHERE id IN (4, 99) "
                           "ORDER BY id") == [{"id": 4, "sql_null": False},
                                              {"id": 99, "sql_null": True}]


async def test_json_as_deep_as_the_limit_is_written_and_read(app: Any) -> None:
    deep = "[" * MAX_JSON_DEPTH + "1" + "]" * MAX_JSON_DEPTH
    objects = '{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH
    await ok(app, f"INSERT INTO app.j (id, js) VALUES (1, '{deep}'), (2, '{objects}')")
    got = await rows(app, "SELECT js, json_valid(js) AS v FROM app.j ORDER BY id")
    assert json.dumps(got[0]["js"], separators=(",", ":")) == deep and got[0]["v"]
    assert json.dumps(got[1]["js"], separators=(",", ":")) == objects and got[1]["v"]


async def test_json_deeper_than_the_limit_is_refused_naming_column_and_limit(app: Any) -> None:
    d = MAX_JSON_DEPTH + 1
    # (the brackets inside a string count for nothing)
    for value in ("[" * d + "]" * d, '{"s": "[[[", "a": ' + "[" * (d - 1) + "]" * (d - 1) + "}"):
        e = await err(app, f"INSERT INTO app.j (id, js) VALUES (1, '{value}')", "INVALID_ARGUMENT")
        assert "Column 'js' (JSON)" in e and f"{d} deep, more than 512" in e, e
    await ok(app, "INSERT INTO app.j (id, js) VALUES (1, '[\"" + "[" * 2000 + "\"]')")


@pytest.mark.parametrize("value", [
    '{"k":"\\ud800"}', '"\\udc00"', '["\\ud800x"]', "NaN", "[Infinity]", "-Infinity",
    "[1,]", "1e999", '{"a":1,}'])
async def test_json_duckdb_would_refuse_is_refused(app: Any, value: str) -> None:
    for write in (f"INSERT INTO app.j (id, js) VALUES (1, '{value}')",
                  f"INSERT INTO app.j (id, js) SELECT 1, '{value}'"):
        e = await err(app, write, "INVALID_ARGUMENT")
        assert "Column 'js' (JSON)" in e and "is not valid JSON" in e, e
    assert await rows(app, "SELECT count(*) AS n FROM app.j") == [{"n": 0}]


async def test_a_lone_surrogate_is_named_and_a_pair_is_taken(app: Any) -> None:
    e = await err(app, "INSERT INTO app.j (id, js) VALUES (1, '{\"k\":\"\\ud800\"}')",
                  "INVALID_ARGUMENT")
    assert "lone surrogate" in e, e
    await ok(app, "INSERT INTO app.j (id, js) VALUES (1, '{\"k\":\"\\ud83d\\ude00\"}'), "
                  "(2, '\"\\\\ud800\"')")
    assert await rows(app, "SELECT js->>'k' AS k FROM app.j WHERE id = 1") == [{"k": "\U0001f600"}]


async def test_an_answers_json_the_write_check_refuses_is_a_string(app: Any) -> None:
    """A JSON answer column's value goes in raw only when a write would take
    it: `CAST('1e999' AS JSON)`, and a text named like a JSON column where the
    answer's columns cannot be told (a join USING), came out as the bare
    number 1e999, which strict JSON readers refuse; in an error's body too."""
    import msgspec
    await ok(app, "INSERT INTO app.j (id, js) VALUES (1, '1'); "
                  "CREATE TABLE app.k (id INT PRIMARY KEY, z INT); INSERT INTO app.k VALUES (1, 2)")
    for q in ("SELECT CAST('1e999' AS JSON) AS js", "SELECT CAST('[NaN]' AS JSON) AS js",
              "SELECT '1e999' AS js FROM app.j JOIN app.k USING (id)"):
        for text in (q, q + "; SELECT * FROM app.nowhere"):
            body = msgspec.json.decode(await raw_answer(app, text))  # strict: no 1e999
            assert body["results"][0]["rows"][0]["js"] in ("1e999", "[NaN]"), (text, body)
    assert await rows(app, "SELECT CAST('[1e308]' AS JSON) AS js") == [{"js": [1e308]}]
