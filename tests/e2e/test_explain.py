"""EXPLAIN [ANALYZE], SUMMARIZE, DESCRIBE SELECT and PIVOT over Cairn tables: they
work, they show what the rewritten query reads, and they stay in the sandbox
(no files, no settings, USER tables still per user)."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import CAIRN, create_app
from server.config import Config
from tests.helpers import ok, sql


async def setup_sales(client: Any) -> None:
    """app.sales: two Parquet files (ids 1-2 and 3-4) and one buffered row (5)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.sales (id BIGINT PRIMARY KEY, "
                     "region TEXT, amount DOUBLE)")
    await ok(client, "INSERT INTO app.sales VALUES (1, 'north', 10), (2, 'south', 20); "
                     "FLUSH TABLE app.sales")
    await ok(client, "INSERT INTO app.sales VALUES (3, 'north', 30), (4, 'south', 40); "
                     "FLUSH TABLE app.sales")
    await ok(client, "INSERT INTO app.sales VALUES (5, 'north', 50)")


async def explain_rows(client: Any, text: str, **kw: Any) -> list[tuple[str, str]]:
    result = (await ok(client, text, **kw))[0]
    assert result["columns"] == ["explain_key", "explain_value"]
    return [(r["explain_key"], r["explain_value"]) for r in result["rows"]]


async def test_explain_lists_files_and_buffered_rows(client: Any) -> None:
    await setup_sales(client)
    rows = await explain_rows(client, "EXPLAIN SELECT region, sum(amount) FROM app.sales "
                                      "GROUP BY region")
    keys = [k for k, _ in rows]
    assert keys == ["table", "file", "file", "rewritten_sql", "physical_plan"]
    assert rows[0][1] == "app.sales: 2 Parquet files (4 rows, " + rows[0][1].split(", ")[1] + \
        ", 1 buffered row"
    files = [v for k, v in rows if k == "file"]
    assert all(v.startswith("app.sales: files/") and "(2 rows, " in v for v in files)
    rewritten = dict(rows)["rewritten_sql"]
    assert "read_parquet" in rewritten and '"write buffer of app.sales"' in rewritten
    plan = dict(rows)["physical_plan"]
    assert "READ_PARQUET" in plan and "ARROW_SCAN" in plan
    data_dir = str(client.server.app[CAIRN].data_dir)
    assert all(data_dir not in v and "__cairn_" not in v for _, v in rows)


async def test_explain_shows_the_point_lookup_reading_one_file(client: Any) -> None:
    await setup_sales(client)
    rows = await explain_rows(client, "EXPLAIN SELECT * FROM app.sales WHERE id = 3")
    assert rows[0][1].startswith("app.sales: 1 Parquet file (2 rows, ")
    assert rows[0][1].endswith(", 0 buffered rows")
    rows = await explain_rows(client, "EXPLAIN SELECT * FROM app.sales WHERE id = 5")
    assert rows[0][1].startswith("app.sales: 0 Parquet files (0 rows, 0 bytes), 1 buffered row")


async def test_explain_analyze_runs_the_query(client: Any) -> None:
    await setup_sales(client)
    rows = await explain_rows(client, "explain analyze SELECT count(*) FROM app.sales "
                                      "WHERE amount > 15")
    assert [k for k, _ in rows] == ["table", "file", "file", "analyzed_plan"]
    analyzed = rows[-1][1]
    assert "Total Time" in analyzed and "READ_PARQUET" in analyzed
    data_dir = str(client.server.app[CAIRN].data_dir)
    assert data_dir not in analyzed and "__cairn_" not in analyzed


async def test_summarize_describe_and_pivot(client: Any) -> None:
    await setup_sales(client)
    await ok(client, "DELETE FROM app.sales WHERE id = 2")
    summary = (await ok(client, "SUMMARIZE app.sales"))[0]
    by_col = {r["column_name"]: r for r in summary["rows"]}
    assert by_col["id"]["count"] == 4  # the soft-deleted row is not read
    assert by_col["amount"]["max"] == "50.0" and by_col["region"]["approx_unique"] == 2
    summary = (await ok(client, "SUMMARIZE SELECT amount FROM sales WHERE region = 'north'",
                        namespace="app"))[0]
    assert [(r["column_name"], r["count"]) for r in summary["rows"]] == [("amount", 3)]
    desc = (await ok(client, "DESCRIBE SELECT id, amount * 2 AS twice FROM app.sales"))[0]
    assert [(r["column_name"], r["column_type"]) for r in desc["rows"]] == [
        ("id", "BIGINT"), ("twice", "DOUBLE")]
    pivot = (await ok(client, "PIVOT (SELECT region, amount FROM app.sales) ON region "
                              "USING sum(amount)"))[0]
    assert pivot["rows"] == [{"north": 90.0, "south": 40.0}]
    unpivot = (await ok(client, "UNPIVOT (SELECT id, amount FROM app.sales WHERE id = 1) "
                                "ON amount INTO NAME k VALUE v"))[0]
    assert unpivot["rows"] == [{"id": 1, "k": "amount", "v": 10.0}]
    std = (await ok(client, "SELECT * FROM (SELECT region, amount FROM app.sales) "
                            "PIVOT (sum(amount) FOR region IN ('north', 'south'))"))[0]
    assert std["rows"] == [{"north": 90.0, "south": 40.0}]


@pytest.mark.parametrize("text", [
    "EXPLAIN SELECT * FROM read_csv('/etc/passwd')",
    "EXPLAIN ANALYZE SELECT * FROM read_csv('/etc/passwd')",
    "EXPLAIN SELECT * FROM '/etc/passwd'",
    "EXPLAIN ANALYZE COPY app.sales TO '/tmp/cairn-explain.csv'",
    "EXPLAIN COPY (SELECT 1) TO '/tmp/cairn-explain.csv'",
    "EXPLAIN ATTACH '/tmp/x.db' AS x",
    "EXPLAIN PRAGMA database_list",
    "EXPLAIN SET threads = 1",
    "EXPLAIN SELECT getenv('HOME')",
    "EXPLAIN SELECT current_setting('threads')",
    "EXPLAIN SELECT * FROM glob('/*')",
    "EXPLAIN EXPLAIN SELECT 1",
    "SUMMARIZE '/etc/passwd'",
    "SUMMARIZE SELECT * FROM read_text('/etc/passwd')",
    "SUMMARIZE \"/etc/passwd\"",
    "DESCRIBE SELECT * FROM read_parquet('/tmp/x.parquet')",
    "DESCRIBE SELECT * FROM '/etc/passwd'",
    "DESCRIBE (SELECT * FROM duckdb_settings())",
    "PIVOT read_csv('/etc/passwd') ON a USING count(*)",
    "PIVOT '/etc/passwd' ON a USING count(*)",
    "SELECT * FROM (PIVOT read_csv('/etc/passwd') ON a USING count(*))",
    "UNPIVOT (SELECT * FROM read_json('/etc/x')) ON a INTO NAME k VALUE v",
])
async def test_they_cannot_reach_files_or_settings(client: Any, text: str) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.sales (id BIGINT PRIMARY KEY)")
    status, body = await sql(client, text)
    assert status == 403, body
    assert body["error"]["code"] == "PERMISSION_DENIED"


async def test_what_duckdbs_parser_refuses_reaches_nothing(client: Any) -> None:
    """SUMMARIZE takes a table or a query: DuckDB's parser, which reads each
    statement too, refuses a table function there before anything runs."""
    status, body = await sql(client, "SUMMARIZE read_csv('/etc/passwd')")
    assert status == 400 and body["error"]["code"] == "PARSE_ERROR", body



@pytest.mark.parametrize("text", ["EXPLAIN INSERT INTO app.sales VALUES (9, 'x', 1)",
                                  "EXPLAIN ANALYZE DELETE FROM app.sales",
                                  "EXPLAIN ANALYZE UPDATE app.sales SET amount = 0"])
async def test_explain_of_a_write_is_refused_and_writes_nothing(client: Any, text: str) -> None:
    await setup_sales(client)
    status, body = await sql(client, text)
    assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", body
    rows = (await ok(client, "SELECT count(*) AS n, sum(amount) AS s FROM app.sales"))[0]["rows"]
    assert rows == [{"n": 5, "s": 150.0}]


async def test_explain_parse_error_points_into_the_request(client: Any) -> None:
    status, body = await sql(client, "SELECT 1;\nEXPLAIN\n  SELEC 1")
    assert status == 400 and body["error"]["code"] == "PARSE_ERROR"
    assert (body["error"]["statement"], body["error"]["line"]) == (2, 3)


async def test_user_tables_stay_per_user(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-root", "user": "root", "role": "admin"},
                                {"token": "t-alice", "user": "alice", "role": "user"},
                                {"token": "t-bob", "user": "bob", "role": "user"}]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, "
                     "body TEXT)", token="t-root")
    await ok(client, "INSERT INTO app.notes VALUES (1, 'a1'), (2, 'a2'); FLUSH TABLE app.notes",
             token="t-alice")
    await ok(client, "INSERT INTO app.notes VALUES (1, 'b1'), (2, 'b2'), (3, 'b3')",
             token="t-bob")
    await ok(client, "FLUSH TABLE app.notes", token="t-root")
    await ok(client, "INSERT INTO app.notes VALUES (4, 'b4')", token="t-bob")
    for token, n, files in (("t-alice", 2, 1), ("t-bob", 4, 1)):
        summary = (await ok(client, "SUMMARIZE app.notes", token=token))[0]["rows"]
        assert {r["column_name"]: r["count"] for r in summary}["id"] == n
        assert {r["column_name"]: r["max"] for r in summary}["body"] == ("a2" if n == 2 else "b4")
        rows = await explain_rows(client, "EXPLAIN SELECT * FROM app.notes", token=token)
        buffered = 0 if n == 2 else 1
        assert rows[0][1].startswith(f"app.notes: {files} Parquet file ({n - buffered} rows, ")
        assert rows[0][1].endswith(f", {buffered} buffered row" + ("" if buffered == 1 else "s"))
        desc = (await ok(client, "DESCRIBE SELECT body FROM app.notes", token=token))[0]
        assert desc["rows"][0]["column_name"] == "body"
        pivot = (await ok(client, "PIVOT (SELECT body FROM app.notes) ON body USING count(*)",
                          token=token))[0]
        assert sorted(pivot["columns"]) == sorted(["a1", "a2"] if n == 2 else
                                                  ["b1", "b2", "b3", "b4"])
    # Sub-queries and joins get the same filtering.
    rows = (await ok(client, "SUMMARIZE SELECT * FROM app.notes a JOIN app.notes b USING (id)",
                     token="t-alice"))[0]["rows"]
    assert {r["column_name"]: r["count"] for r in rows}["id"] == 2


async def test_user_table_without_a_user_is_refused(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY)")
    await ok(client, "INSERT INTO app.notes VALUES (1)", user="alice")
    for text in ("SUMMARIZE app.notes", "EXPLAIN SELECT * FROM app.notes",
                 "DESCRIBE SELECT * FROM app.notes", "PIVOT app.notes ON id USING count(*)"):
        status, body = await sql(client, text)
        assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", (text, body)
        assert "USER table" in body["error"]["message"]


async def test_system_tables_look_the_same_as_in_a_select(aiohttp_client: Any,
                                                           cairn_config: Config) -> None:
    """A role-user sees only their own jobs in SUMMARIZE too, as in SELECT."""
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-root", "user": "root", "role": "admin"},
                                {"token": "t-alice", "user": "alice", "role": "user"}]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1); BACKUP DATABASE app TO 'x'", token="t-root")
    for token, seen in (("t-root", 1), ("t-alice", 0)):
        selected = (await ok(client, "SELECT count(*) AS n FROM system.jobs "
                                     "WHERE job_type = 'backup'", token=token))[0]["rows"]
        assert selected == [{"n": seen}]
        summary = (await ok(client, "SUMMARIZE SELECT job_id FROM system.jobs WHERE job_type "
                                    "= 'backup'", token=token))[0]["rows"]
        assert summary[0]["count"] == seen
