"""JSON a write takes is JSON DuckDB and every reader take. Found by trying:
`{"k":"\\ud800"}` and NaN were stored (Python's json.loads takes them), and
the server's own JSON functions then failed on them; a value nested 1000
deep was refused as "the statement nests too deeply", and values nested
973 and 900 deep were taken and then could not be read over HTTP. And an
HTTP answer re-parsed JSON: duplicate keys lost,
0.1000000000000000055511151231257827 became 0.1, -0 became 0."""

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
