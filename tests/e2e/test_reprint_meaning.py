"""What runs means what the user wrote, as DuckDB reads it (sqlgrammar/reprint.py).

Cairn gates a statement with DuckDB's parser but runs sqlglot's reprint of it;
found by trying, the reprint meant something else: a JSON key `'a.b'` became
the path `'$.a.b'` (a DELETE removed the other row), INTERVAL '1 mon' became
INTERVAL '1' MON (one second, named MON), `j -> 'x' || 'y'` became
`(j -> 'x') || 'y'` (DuckDB: `j -> ('x' || 'y')`), `<=>` (DuckDB's cosine
distance) became IS NOT DISTINCT FROM and `@NULL` abs of a column "NULL". The
model is DuckDB itself, in process, over a plain table holding the same rows."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from tests.helpers import err, ok, rows, sql

DOC = ('{"a.b": 1, "a": {"b": 2}, "x[0]": "k", "x": [5, 6], "$.a": 7, "*": 8, "a b": 9, '
       '"é.x": 10, "é": {"x": 11}, "q\\"r": 12, "0": 13, "": 14}')
DOC2 = ('{"a.b": 2, "a": {"b": 1}, "x[0]": "m", "x": [7, 8], "*": 3, "a b": 4, '
        '"é.x": 5, "q\\"r": 6, "0": 7}')
INSERT = f"INSERT INTO app.t (k, j) VALUES (1, '{DOC}'), (2, '{DOC2}')"


@pytest.fixture
async def app(client: Any) -> tuple[Any, duckdb.DuckDBPyConnection]:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, j JSON, "
                     "v TEXT, ts TIMESTAMP)")
    await ok(client, INSERT)
    model = duckdb.connect()
    model.execute("CREATE SCHEMA app; CREATE TABLE app.t (k INT PRIMARY KEY, j JSON, v TEXT, "
                  "ts TIMESTAMP)")
    model.execute(INSERT)
    return client, model


def _model(model: duckdb.DuckDBPyConnection, text: str) -> list[list[Any]]:
    return [[None if v is None else str(v) for v in r] for r in model.execute(text).fetchall()]


def _model_error(model: duckdb.DuckDBPyConnection, text: str) -> Exception | None:
    try:
        model.execute(text).fetchall()
    except duckdb.Error as exc:
        return exc
    return None


async def _cairn(client: Any, text: str) -> list[list[Any]]:
    got = await rows(client, text)
    return [[None if v is None else str(v) for v in (r.values() if isinstance(r, dict) else r)]
            for r in got]


KEYS = ["'a.b'", "'x[0]'", "'$.a.b'", "'/a/b'", "'$.a'", "'*'", "'a b'", "'é.x'",
        "'q\"r'", "'0'", "''", "$$a.b$$", "('a.b')", "['a.b', 'x[0]', 'a b']", "'x'", "0"]
FORMS = ["j -> {k}", "j ->> {k}", "json_extract(j, {k})", "json_extract_string(j, {k})",
         "json_extract_path(j, {k})", "json_extract_path_text(j, {k})"]


@pytest.mark.parametrize("form", FORMS)
async def test_a_json_key_is_read_as_duckdb_reads_it(app: Any, form: str) -> None:
    """A key without a leading `$` or `/` is one key to DuckDB, dots, brackets,
    quotes, `*`, blanks and all; the same key by `$$...$$` or in parentheses."""
    client, model = app
    for key in KEYS:
        text = f"SELECT k, {form.format(k=key)} AS v FROM app.t ORDER BY k"
        assert await _cairn(client, text) == _model(model, text), text


@pytest.mark.parametrize("where", ["j ->> 'a.b' = '1'", "json_extract_string(j, 'a.b') = '1'",
                                   "(j -> 'x[0]') = '\"k\"'", "j ->> $$a.b$$ = '1'",
                                   "(j ->> ('a.b')) = '1'"])
async def test_a_delete_by_a_json_key_deletes_duckdbs_rows(app: Any, where: str) -> None:
    client, model = app
    await ok(client, f"DELETE FROM app.t WHERE {where}")
    model.execute(f"DELETE FROM app.t WHERE {where}")
    text = "SELECT k FROM app.t ORDER BY k"
    assert await _cairn(client, text) == _model(model, text) == [["2"]]


async def test_an_update_by_a_json_key_sets_duckdbs_value(app: Any) -> None:
    client, model = app
    for stmt in ("UPDATE app.t SET v = j ->> 'a.b' WHERE j ->> 'x[0]' = 'k'",
                 "UPDATE app.t SET v = v || json_extract_string(j, 'é.x')"):
        await ok(client, stmt)
        model.execute(stmt)
    text = "SELECT k, v FROM app.t ORDER BY k"
    assert await _cairn(client, text) == _model(model, text) == [["1", "110"], ["2", None]]


# Every unit DuckDB reads inside an INTERVAL string (and the keywords too).
UNITS = ["mon", "mons", "hr", "hrs", "yr", "yrs", "y", "min", "mins", "m", "h", "d", "w", "dec",
         "decs", "c", "cent", "mil", "mils", "millenniums", "millenium", "msec", "msecs", "ms",
         "usec", "usecs", "us", "s", "sec", "secs", "MON", "Hrs", "day", "months", "year",
         "decade", "century", "millennium", "week", "quarter", "microseconds"]


async def test_an_interval_with_any_duckdb_unit_means_that_unit(app: Any) -> None:
    """INTERVAL '2 mon' is two months (sqlglot printed INTERVAL '2' MON: two
    seconds named MON), in a SELECT item, a subquery and each DML path."""
    client, model = app
    for unit in UNITS:
        text = (f"SELECT CAST(TIMESTAMP '2024-05-01' + INTERVAL '2 {unit}' AS VARCHAR) AS v, "
                f"CAST(INTERVAL '-3 {unit}' AS VARCHAR)")
        assert await _cairn(client, text) == _model(model, text), text
    for stmt in ["UPDATE app.t SET ts = TIMESTAMP '2024-01-15' WHERE k = 1",
                 "UPDATE app.t SET ts = TIMESTAMP '2024-02-20' WHERE k = 2",
                 "INSERT INTO app.t (k, ts) SELECT 3, TIMESTAMP '2024-05-01' + INTERVAL '1 mon'",
                 "UPDATE app.t SET ts = ts + INTERVAL '1 yr' WHERE k = 3",
                 "DELETE FROM app.t WHERE ts < (SELECT TIMESTAMP '2024-03-01' - INTERVAL '1 mon')",
                 "UPDATE app.t SET ts = ts - INTERVAL '2 hrs' WHERE ts > TIMESTAMP '2024-02-01' "
                 "+ INTERVAL '3 d'"]:
        await ok(client, stmt)
        model.execute(stmt)
    text = "SELECT k, CAST(ts AS VARCHAR) FROM app.t ORDER BY k"
    assert await _cairn(client, text) == _model(model, text)
    assert [r[0] for r in _model(model, text)] == ["2", "3"]


async def test_a_unit_outside_the_string_is_as_duckdb_reads_it(app: Any) -> None:
    """`INTERVAL '1' mon` is INTERVAL '1' named mon, to both; INTERVAL 1 mon,
    which DuckDB cannot run, is refused with what to write."""
    client, model = app
    text = "SELECT CAST(mon AS VARCHAR) AS v FROM (SELECT INTERVAL '1' mon)"
    assert await _cairn(client, text) == _model(model, text) == [["00:00:01"]]
    message = await err(client, "SELECT TIMESTAMP '2024-05-01' + INTERVAL 1 mon",
                        "INVALID_ARGUMENT")
    assert "write INTERVAL '1 mon'" in message
    for junk in ("+3 mins", "3 days!"):  # DuckDB refuses them; sqlglot read 3 minutes, 3 days
        message = await err(client, f"SELECT INTERVAL '{junk}'", "INVALID_ARGUMENT")
        assert f"CAST('{junk}' AS INTERVAL)" in message
        assert isinstance(_model_error(model, f"SELECT INTERVAL '{junk}'"), duckdb.Error)


@pytest.mark.parametrize("stmt", ["UPDATE app.t SET v = j -> 'x' || 'y' WHERE k = 1",
                                  "DELETE FROM app.t WHERE (j -> 'x' || 'y') IS NULL",
                                  "DELETE FROM app.t WHERE j -> 'a' = '{\"b\": 2}'",
                                  "SELECT k FROM app.t WHERE j -> 'x' IS NULL",
                                  "DELETE FROM app.t WHERE j ->> 'a.b' & 1 = 1",
                                  "DELETE FROM app.t WHERE '[1]' @> j -> 'x'"])
async def test_an_arrow_read_otherwise_is_refused(app: Any, stmt: str) -> None:
    """DuckDB's `->` takes everything after it as its right side (`j -> 'x' ||
    'y'` is `j -> ('x' || 'y')`); sqlglot bound it tighter. Refused, nothing
    changed, with the parentheses to write."""
    client, _ = app
    before = await _cairn(client, "SELECT k, v FROM app.t ORDER BY k")
    assert "write parentheses" in await err(client, stmt, "INVALID_ARGUMENT")
    assert await _cairn(client, "SELECT k, v FROM app.t ORDER BY k") == before


async def test_an_arrow_in_parentheses_runs_as_written(app: Any) -> None:
    client, model = app
    for stmt in ["UPDATE app.t SET v = (j -> 'x') || 'y' WHERE k = 1",
                 "UPDATE app.t SET v = j -> ('x' || '[0]') WHERE k = 2",
                 "DELETE FROM app.t WHERE (j ->> 'a.b') = '2'"]:
        await ok(client, stmt)
        model.execute(stmt)
    text = "SELECT k, v, j ->> 'a.b' = '1' AS one, j -> 'x' -> 0 AS x0 FROM app.t ORDER BY k"
    assert await _cairn(client, text) == _model(model, text)


@pytest.mark.parametrize("text,says", [("SELECT [1.0, 2.0] <=> [2.0, 4.0]", "cosine"),
                                       ("SELECT @NULL", "abs(x)"), ("SELECT @ -2 || 'a'", "abs(x)"),
                                       ("SELECT 'ab' ^@ 'a'", "starts_with")])
async def test_an_operator_sqlglot_reads_otherwise_is_refused(app: Any, text: str,
                                                              says: str) -> None:
    client, _ = app
    assert says in await err(client, text, "INVALID_ARGUMENT")


async def test_a_subquery_column_is_named_by_its_text_as_written(app: Any) -> None:
    """Not by sqlglot's reprint of it (string_agg was LISTAGG, list ARRAY_AGG)."""
    client, _ = app
    items = ["(SELECT string_agg(v, ',') FROM app.t)", "( SELECT  list(k) FROM app.t )",
             "EXISTS (SELECT 1 FROM app.t WHERE j ->> 'a.b' = '2')",
             "(SELECT 'é' FROM app.t LIMIT 1)"]
    result = (await ok(client, f"SELECT {', '.join(items)}"))[-1]
    assert result["columns"] == items


@pytest.mark.parametrize("stmt", ["SELECT 1.5::FLOAT(3) AS f",
                                  "UPDATE app.t SET v = CAST(1.5::FLOAT(3) AS TEXT) WHERE k = 1",
                                  "DELETE FROM app.t WHERE k = 1.5::FLOAT(3)"])
async def test_a_rewrite_duckdb_cannot_read_names_the_part(app: Any, stmt: str) -> None:
    """DuckDB's parser takes `1.5::FLOAT(3)`; sqlglot writes it back as
    CAST(1.5 AS REAL(3)), which it does not: that is said, naming the part,
    not 'syntax error at or near "("' about text the user never wrote."""
    client, _ = app
    message = await err(client, stmt, "INVALID_ARGUMENT")
    assert "Cairn cannot run this statement" in message and "CAST(1.5 AS REAL(3))" in message
    assert len(await rows(client, "SELECT k FROM app.t")) == 2


async def test_a_dollar_quote_with_a_tag_past_ascii_is_a_string(app: Any) -> None:
    """`$é$…$é$` is a string to DuckDB and PostgreSQL: the splitter took its
    `/*` for a comment, and once comments were dropped before parsing the
    strings went with it (a DELETE removed every row, not one)."""
    client, model = app
    text = "SELECT $é$/*$é$ AS a, $é$*/$é$ AS b, $é$;$é$ AS c"
    assert await _cairn(client, text) == _model(model, text) == [["/*", "*/", ";"]]
    stmt = "DELETE FROM app.t WHERE k = 1 OR v <> $é$/*$é$ AND v = $é$*/$é$"
    await ok(client, stmt)
    model.execute(stmt)
    assert await _cairn(client, "SELECT k FROM app.t") == _model(
        model, "SELECT k FROM app.t") == [["2"]]


async def test_strings_with_a_comment_between_do_not_continue(app: Any) -> None:
    """'a' newline 'b' is one string ('ab'), but a comment between them ends
    it, in DuckDB and PostgreSQL alike: dropping comments before parsing
    stored 'ab'."""
    client, model = app
    for stmt in ("UPDATE app.t SET v = 'a'\n/* note */ 'b' WHERE k = 1",
                 "UPDATE app.t SET v = 'c' /* note */ -- more\n 'd' WHERE k = 1"):
        assert _model_error(model, stmt) is not None
        await err(client, stmt, "PARSE_ERROR")
    await ok(client, "UPDATE app.t SET v = 'a'\n'b' WHERE k = 1")
    assert await _cairn(client, "SELECT v FROM app.t WHERE k = 1") == [["ab"]]
    # a `--` comment is blank to the rule: 'a' -- c newline 'b' is 'ab' (was refused)
    for text in ("SELECT 'a' -- c\n'b' AS x", "SELECT 'a' -- c /* d */\n'b' AS x",
                 "SELECT 'a' -- /*\n'b' AS x"):
        assert await _cairn(client, text) == _model(model, text) == [["ab"]], text


async def test_a_json_function_of_more_paths_is_duckdbs_to_take(app: Any) -> None:
    """json_extract_path_text(j, 'a', 'b') ran as `j ->> 'a'` (sqlglot kept
    the first path): DuckDB has no such call, and neither does Cairn now."""
    client, model = app
    for text in ("SELECT json_extract_path_text(j, 'a', 'b') FROM app.t",
                 "DELETE FROM app.t WHERE json_extract_path_text(j, 'a', 'b') IS NOT NULL",
                 "SELECT json_extract(j, 'a', 'b') FROM app.t",
                 "SELECT json_extract_scalar(j, 'a.b') FROM app.t"):
        assert _model_error(model, text) is not None, text
        status, _ = await sql(client, text)
        assert status == 400, text
    assert await _cairn(client, "SELECT count(*) FROM app.t") == [["2"]]


async def test_an_operator_refused_after_a_comment_is_named_where_it_stands(app: Any) -> None:
    client, _ = app
    message = await err(client, "SELECT /* a comment */ [1.0] <=> [2.0]", "INVALID_ARGUMENT")
    assert "line 1, column 30" in message, message
