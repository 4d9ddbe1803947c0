"""SELECT over HTTP: newest version wins across files and buffer, joins across
tables and system tables, every system table's columns, and the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import err, ok, rows, sql


@pytest.fixture
async def app(client: Any) -> Any:
    await ok(client, "CREATE NAMESPACE app; CREATE NAMESPACE other")
    await ok(client, "CREATE TABLE app.users (id INT PRIMARY KEY, name TEXT, team TEXT)")
    await ok(client, "CREATE TABLE other.orders (id INT PRIMARY KEY, user_id INT, amount DOUBLE)")
    await ok(client, "INSERT INTO app.users VALUES (1, 'ann', 'red'), (2, 'bob', 'blue'), "
                     "(3, 'cy', 'red')")
    await ok(client, "INSERT INTO other.orders VALUES (10, 1, 5.0), (11, 1, 7.5), (12, 2, 1.0)")
    await ok(client, "FLUSH ALL TABLES IN app; FLUSH ALL TABLES IN other")
    await ok(client, "INSERT INTO other.orders VALUES (13, 3, 2.5)")
    return client


async def test_where_order_limit_aggregate(app: Any) -> None:
    got = await rows(
        app, "SELECT name FROM app.users WHERE team = 'red' ORDER BY name DESC LIMIT 1"
    )
    assert got == [{"name": "cy"}]
    got = await rows(app, "SELECT team, count(*) AS n FROM app.users GROUP BY team ORDER BY team")
    assert got == [{"team": "blue", "n": 1}, {"team": "red", "n": 2}]
    res = (await ok(app, "SELECT sum(amount) AS s FROM other.orders"))[0]
    assert res["rows"] == [{"s": 16.0}] and res["schema"] == [{"name": "s", "type": "DOUBLE"}]


async def test_join_across_namespaces_default_namespace_and_cte(app: Any) -> None:
    q = ("SELECT u.name, sum(o.amount) AS total FROM users u JOIN other.orders o "
         "ON o.user_id = u.id GROUP BY u.name ORDER BY total DESC")
    got = await rows(app, q, namespace="app")
    assert got == [{"name": "ann", "total": 12.5}, {"name": "cy", "total": 2.5},
                   {"name": "bob", "total": 1.0}]
    got = await rows(app, "WITH big AS (SELECT * FROM other.orders WHERE amount > 2) "
                          "SELECT count(*) AS n FROM big")
    assert got == [{"n": 3}]
    got = await rows(app, "SELECT app.users.name FROM app.users WHERE app.users.id = 2")
    assert got == [{"name": "bob"}]
    got = await rows(app, "SELECT name FROM app.users WHERE id IN (SELECT user_id FROM "
                          "other.orders WHERE amount < 2)")
    assert got == [{"name": "bob"}]


async def test_the_request_namespace_is_a_name_and_system_reads(app: Any) -> None:
    """`"namespace": "system"` made every unqualified read "system tables are
    read-only" (a missing table too); a namespace that is no name was echoed
    whole in NOT_FOUND (100,000 characters). Found by trying."""
    assert await rows(app, "SELECT count(*) > 0 AS any FROM namespaces", namespace="SYSTEM") == [
        {"any": True}]
    await err(app, "SELECT * FROM no_such_table", "NOT_FOUND", namespace="system")
    assert "read-only" in await err(app, "DELETE FROM jobs", "INVALID_ARGUMENT",
                                    namespace="system")
    for bad in ["Has Space", "app; DROP", "x" * 100_000, "é", "9a", "a" * 65]:
        message = await err(app, "SELECT 1", "INVALID_REQUEST", namespace=bad)
        assert '"namespace" must be a name' in message and len(message) < 200, message
    assert await rows(app, "SELECT count(*) AS n FROM users", namespace="APP") == [{"n": 3}]


async def test_newest_version_wins_across_files_and_buffer(app: Any) -> None:
    await ok(app, "UPDATE app.users SET name = 'ANN' WHERE id = 1")
    await ok(app, "FLUSH TABLE app.users")
    await ok(
        app, "UPDATE app.users SET name = 'Ann' WHERE id = 1; DELETE FROM app.users WHERE id = 3"
    )
    got = await rows(app, "SELECT id, name FROM app.users ORDER BY id")
    assert got == [{"id": 1, "name": "Ann"}, {"id": 2, "name": "bob"}]
    assert await rows(app, "SELECT count(*) AS n FROM app.users") == [{"n": 2}]


async def test_join_with_system_tables(app: Any) -> None:
    got = await rows(app, "SELECT t.table_name, n.table_count FROM system.tables t "
                          "JOIN system.namespaces n ON n.namespace = t.namespace "
                          "WHERE t.namespace = 'app'")
    assert got == [{"table_name": "users", "table_count": 1}]
    got = await rows(app, "SELECT count(*) AS n FROM app.users u JOIN system.tables t "
                          "ON t.table_name = 'users'")
    assert got == [{"n": 3}]
    got = await rows(app, "SELECT system.tables.table_name FROM system.tables "
                          "WHERE system.tables.namespace = 'other'")
    assert got == [{"table_name": "orders"}]


SYSTEM_COLUMNS = {
    "namespaces": ["namespace", "created_at", "table_count", "options"],
    "tables": ["namespace", "table_name", "table_type", "schema_version", "created_at",
               "options", "buffered_rows", "flushed_rows", "files", "bytes"],
    "table_schemas": ["namespace", "table_name", "version", "columns", "created_at"],
    "jobs": ["job_id", "job_type", "status", "namespace", "target", "backup_id", "statement",
             "user_id", "created_at", "started_at", "finished_at", "fraction_completed",
             "files_done", "files_total", "bytes_done", "bytes_total", "rows", "result",
             "error_message", "node_id", "waiting_for"],
    "backups": ["backup_id", "namespace", "target", "created_at", "snapshot_at", "tables",
                "rows", "files", "bytes", "bytes_written", "label", "encrypted", "row_versions",
                "scope", "own"],
    "schedules": ["name", "namespace", "target", "every", "keep_last", "created_at",
                  "next_run_at", "last_job_id", "last_status", "cron"],
}  # fmt: skip


async def test_system_table_columns_and_types(app: Any) -> None:
    for name, cols in SYSTEM_COLUMNS.items():
        res = (await ok(app, f"SELECT * FROM system.{name}"))[0]
        assert res["columns"] == cols, name
        types = {s["name"]: s["type"] for s in res["schema"]}
        for col in cols:
            if col.endswith("_at"):
                assert types[col] == "TIMESTAMP", (name, col)
        if name in ("namespaces", "tables"):
            assert types["options"] == "JSON"
    jobs = (await ok(app, "SELECT * FROM system.jobs ORDER BY created_at LIMIT 1"))[0]
    types = {s["name"]: s["type"] for s in jobs["schema"]}
    assert types["result"] == "JSON" and types["fraction_completed"] == "DOUBLE"
    assert jobs["rows"][0]["created_at"].endswith("Z")
    schemas = await rows(app, "SELECT columns FROM system.table_schemas WHERE table_name = 'users'")
    assert schemas[0]["columns"][0] == {"name": "id", "type": "INT", "not_null": True,
                                        "primary_key": True, "default": None, "system": False}
    await err(app, "SELECT * FROM system.nope", "NOT_FOUND")


async def test_query_errors(app: Any) -> None:
    assert "app.nope" in await err(app, "SELECT * FROM app.nope", "NOT_FOUND")
    assert "'nope'" in await err(app, "SELECT * FROM nope.t", "NOT_FOUND")
    assert "no namespace" in await err(app, "SELECT * FROM users", "INVALID_ARGUMENT")
    msg = await err(app, "SELECT nope FROM app.users", "INVALID_ARGUMENT")
    assert "nope" in msg and "__t" not in msg
    await err(app, "SELECT _seq FROM app.users", "INVALID_ARGUMENT")
    await err(app, "SELECT _user FROM app.users", "INVALID_ARGUMENT")


ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('files/x.parquet')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT read_text('/etc/passwd')",
    "SELECT * FROM glob('*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'data/files/x.parquet'",
    "SELECT * FROM parquet_metadata('x.parquet')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT getenv('HOME')",
    "SELECT current_setting('allowed_directories')",
    "SELECT * FROM duckdb_settings()",
    "ATTACH '/tmp/x.db' AS x",
    "COPY app.users TO '/tmp/out.csv'",
    "COPY (SELECT 1) TO '/tmp/out.csv'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA version",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "EXPORT DATABASE '/tmp/x'",
    "CREATE TABLE x AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "SELECT 1 INTO x",
    "DETACH x",
    "CALL pragma_version()",
    "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "SELECT * FROM app.users, read_csv('/etc/passwd')",
    "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))",
    "INSERT INTO app.users SELECT 9, content, '' FROM read_text('/etc/passwd')",
    "UPDATE app.users SET name = (SELECT content FROM read_text('/etc/passwd'))",
    "DELETE FROM app.users WHERE name IN (SELECT * FROM read_csv('/etc/passwd'))",
    "SELECT * FROM 'https://example.com/x.csv'",
    # LATERAL put a table function in a node the allow-list did not look at.
    "SELECT count(*) AS n FROM (SELECT 1) x, LATERAL test_all_types()",
    "SELECT * FROM (SELECT 1) x, LATERAL truncate_duckdb_logs()",
    "SELECT * FROM app.users u JOIN LATERAL icu_calendar_names() c ON true",
    # The statement as DuckDB runs it: the data dir's paths, registered names.
    "SELECT current_query() FROM app.users",
    # SQL in a string: DuckDB binds and folds it where the allow-list cannot see.
    "SELECT json_serialize_plan('SELECT current_setting(''allowed_directories'')::VARCHAR', "
    "optimize := true)",
    "SELECT json_serialize_plan('SELECT 1 FROM read_parquet(''files/x.parquet'')')",
    "SELECT length(json_serialize_plan('SELECT repeat(''x'', 400000000)', optimize := true))",
    "SELECT json_serialize_sql('SELECT 1')",
    "SELECT json_deserialize_sql(json_serialize_sql('SELECT 1'))",
    "SELECT write_log('x')",
    # Counters of the whole server: they moved with other users' queries.
    "SELECT txid_current()", "SELECT current_transaction_id() FROM app.users",
    "SELECT current_query_id()", "SELECT current_connection_id()",
]


@pytest.mark.parametrize("text", ESCAPES)
async def test_sandbox_escapes_are_denied(app: Any, text: str) -> None:
    status, body = await sql(app, text)
    assert status in (403, 400), body
    if status == 400:  # a few do not even parse; never a 200 nor a 500
        assert body["error"]["code"] == "PARSE_ERROR", body
    else:
        assert body["error"]["code"] == "PERMISSION_DENIED", body


@pytest.mark.parametrize("namespace", [None, "app"])
async def test_a_cte_name_is_a_cte_only_where_its_with_is_seen(app: Any,
                                                              namespace: str | None) -> None:
    """A CTE's name was collected over the whole query and left unrewritten
    wherever it stood: defined inside one subquery, the same name beside it
    went to DuckDB as written, which read its own catalog (pg_settings, with
    the data dir's path, duckdb_databases, ...) or the Arrow tables another
    user's query had registered. Out of its WITH's scope a name is a Cairn
    table: rewritten, or not found."""
    for name in ("pg_settings", "duckdb_databases", "duckdb_settings", "sqlite_master"):
        text = (f"SELECT * FROM (WITH {name} AS (SELECT 1 AS one) SELECT 1 AS one) x, {name}, "
                f"range(1) r")
        status, body = await sql(app, text, namespace=namespace)
        assert status in (400, 404), body
        assert body["error"]["code"] in ("INVALID_ARGUMENT", "NOT_FOUND"), body
    # Python lowers the Kelvin sign (U+212A) to k; DuckDB lowers ASCII only,
    # so this CTE's name is not `duckdb_databases` to DuckDB.
    status, body = await sql(app, 'WITH "duc\u212adb_databases" AS (SELECT 1 AS one) '
                                  "SELECT * FROM duckdb_databases", namespace=namespace)
    assert status in (400, 404), body
    # A later CTE is not seen by an earlier one.
    status, body = await sql(app, "WITH a AS (SELECT * FROM pg_settings), pg_settings AS "
                                  "(SELECT 1 AS one) SELECT * FROM a", namespace=namespace)
    assert status in (400, 404), body
    # CTEs in scope still read as CTEs, whatever their case.
    assert await rows(app, "WITH X AS (SELECT id FROM app.users) SELECT count(*) AS n FROM x",
                      namespace=namespace) == [{"n": 3}]
    assert await rows(app, "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r "
                           "WHERE n < 4) SELECT sum(n) AS s FROM r",
                      namespace=namespace) == [{"s": 10}]
    assert await rows(app, "SELECT count(*) AS n FROM app.users WHERE id IN "
                           "(WITH users AS (SELECT 2 AS id) SELECT id FROM users)",
                      namespace=namespace) == [{"n": 1}]
    if namespace:  # the same name outside the WITH is the namespace's table
        assert await rows(app, "SELECT (SELECT count(*) FROM (WITH users AS (SELECT 1 AS id) "
                               "SELECT id FROM users) q) AS a, (SELECT count(*) FROM users) AS b",
                          namespace=namespace) == [{"a": 1, "b": 3}]


UNWRITABLE = [
    ("SELECT DATE()", "date"),
    ("SELECT INITCAP()", "initcap"),
    ("SELECT BOOLNOT(1, 2)", "boolnot"),
    ("SELECT BOOLAND('a', 'b', 'c') FROM app.users", "booland"),
    ("SELECT name FROM app.users WHERE name = upper(DATETIME('a'))", "datetime"),
    ("INSERT INTO app.users VALUES (5, DATE(), 'red')", "date"),
    ("DELETE FROM app.users WHERE name = DATE()", "date"),
]


@pytest.mark.parametrize("text, function", UNWRITABLE)
async def test_a_call_sqlglot_reads_but_cannot_write_is_a_400(app: Any, text: str,
                                                             function: str) -> None:
    """sqlglot parses these calls and then fails to write them as DuckDB SQL
    (a TypeError, AttributeError or ParseError inside its generator): they
    were 500 INTERNAL. Now INVALID_ARGUMENT naming the call; nothing changes.
    (A name DuckDB has no function of, initcap or booland, now goes to DuckDB
    as written, sqlgrammar/calls.py, which says it does not exist.)"""
    message = await err(app, text, "INVALID_ARGUMENT")
    assert (f"function {function}()" in message
            or f"Function with name {function} does not exist" in message), message
    assert await rows(app, "SELECT id, name FROM app.users ORDER BY id") == [
        {"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "cy"}]


@pytest.mark.parametrize(("text", "column"), [
    ("SELECT TIME()", 13), ("UPDATE app.users SET name = TIME() WHERE id = 1", 36)])
async def test_a_call_duckdbs_parser_refuses_is_a_parse_error(app: Any, text: str,
                                                              column: int) -> None:
    """`TIME()` was INVALID_ARGUMENT from sqlglot's generator; DuckDB's
    parser, which now reads each statement too, calls it a syntax error."""
    status, body = await sql(app, text)
    assert (status, body["error"]["code"], body["error"]["column"]) == (400, "PARSE_ERROR", column)
    assert await rows(app, "SELECT id, name FROM app.users ORDER BY id") == [
        {"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "cy"}]


async def test_other_users_rows_and_files_unreachable(app: Any) -> None:
    await ok(app, "CREATE USER TABLE app.secrets (id INT PRIMARY KEY, s TEXT)")
    await ok(app, "INSERT INTO app.secrets VALUES (1, 'alice-secret')", user="alice")
    await ok(app, "FLUSH TABLE app.secrets")
    await ok(app, "INSERT INTO app.secrets VALUES (2, 'alice-buffered')", user="alice")
    await ok(app, "INSERT INTO app.secrets VALUES (1, 'bob-secret')", user="bob")
    for q in ["SELECT s FROM app.secrets",
              "SELECT s FROM app.secrets WHERE _deleted OR NOT _deleted",
              "SELECT a.s FROM app.secrets a JOIN app.secrets b USING (id)",
              "SELECT (SELECT string_agg(s, ',') FROM app.secrets) AS s"]:
        got = await rows(app, q, user="bob")
        assert all("alice" not in str(r) for r in got), (q, got)
    paths = await rows(app, "SELECT count(*) AS n FROM system.tables")
    assert paths
    await err(app, "SELECT * FROM read_parquet('files/*/*.parquet')", "PERMISSION_DENIED",
              user="bob")


async def test_hex_looking_number_is_refused_and_nothing_stored(app: Any) -> None:
    # sqlglot and DuckDB read 0x16 as `0 AS x16`: this stored id 0 before.
    for text in ["INSERT INTO app.users VALUES (0x16, 'hex', 'red')",
                 "INSERT INTO app.users (id, name, team) VALUES (7, 'x', 'red'), "
                 "(0x16, 'hex', 'red')",
                 "INSERT INTO app.users VALUES (8 id, 'named', 'red')"]:
        await err(app, text, "PARSE_ERROR")
    got = await rows(app, "SELECT id FROM app.users ORDER BY id")
    assert got == [{"id": 1}, {"id": 2}, {"id": 3}]


async def test_current_user_is_the_caller_not_duckdb(client: Any) -> None:
    """`current_user` beside a Cairn table was DuckDB's own ('duckdb'), and an
    INSERT stored it. Found by trying."""
    await ok(client, "CREATE NAMESPACE cu; CREATE TABLE cu.t (id BIGINT PRIMARY KEY, who TEXT)")
    await ok(client, "INSERT INTO cu.t SELECT 1, current_user", user="alice")
    await ok(client, "INSERT INTO cu.t VALUES (2, session_user)", user="bob")
    assert await rows(client, "SELECT id, who, current_user AS u FROM cu.t ORDER BY id",
                      user="carol") == [{"id": 1, "who": "alice", "u": "carol"},
                                        {"id": 2, "who": "bob", "u": "carol"}]


async def test_every_spelling_of_the_caller_is_the_caller(client: Any) -> None:
    """`user` and `current_role` (and `user()`, `current_role()`, a quoted
    "current_user") were DuckDB's own 'duckdb', and an INSERT stored it; the
    result column of `SELECT current_user` was named after the caller."""
    words = ("user", "current_role", "current_user", "session_user")
    calls = ("user()", "current_role()", "current_user()", "session_user()",
             '"user"', '"current_user"', "USER", "Current_Role")
    got = await ok(client, f"SELECT {', '.join(words)}", user="alice")
    assert got[0]["columns"] == list(words)
    assert got[0]["rows"] == [dict.fromkeys(words, "alice")]
    got = await ok(client, f"SELECT {', '.join(calls)}", user="alice")
    assert list(got[0]["rows"][0].values()) == ["alice"] * len(calls), got
    await ok(client, "CREATE NAMESPACE cw; "
                     "CREATE TABLE cw.a (id BIGINT PRIMARY KEY, u TEXT, r TEXT, c TEXT)")
    await ok(client, "INSERT INTO cw.a VALUES (1, user, current_role, current_user)", user="bob")
    await ok(client, "INSERT INTO cw.a SELECT 2, user(), current_role(), session_user", user="eve")
    await ok(client, "UPDATE cw.a SET r = user WHERE id = 2", user="dan")
    assert await rows(client, "SELECT id, u, r, c FROM cw.a ORDER BY id", user="carol") == [
        {"id": 1, "u": "bob", "r": "bob", "c": "bob"},
        {"id": 2, "u": "eve", "r": "dan", "c": "eve"}]
    # a point SELECT (the fast path) and a WHERE
    assert await rows(client, "SELECT user FROM cw.a WHERE id = 1", user="carol") == [
        {"user": "carol"}]
    assert await rows(client, "SELECT id FROM cw.a WHERE u = user", user="bob") == [{"id": 1}]
    # A table's own column named user stays that column (as DuckDB binds it).
    await ok(client, 'CREATE TABLE cw.k (id BIGINT PRIMARY KEY, "user" TEXT); '
                     "INSERT INTO cw.k VALUES (1, 'stored')")
    assert await rows(client, "SELECT user, current_user FROM cw.k", user="carol") == [
        {"user": "stored", "current_user": "carol"}]
    assert await rows(client, "SELECT id FROM cw.k WHERE user = 'stored'", user="x") == [
        {"id": 1}]
    assert await rows(client, "SELECT w FROM (SELECT 'a' AS user) s(w)", user="x") == [
        {"w": "a"}]
