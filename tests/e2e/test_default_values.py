"""`DEFAULT` written as a value (`INSERT … VALUES (1, DEFAULT)`, `UPDATE … SET v
= DEFAULT`, `INSERT … DEFAULT VALUES`) gives the column its DEFAULT, NULL
without one, as in PostgreSQL and DuckDB. Each was refused with DuckDB's
binder words ("SELECT clause cannot contain DEFAULT clause", 'Referenced
column "DEFAULT" not found')."""

from __future__ import annotations

from typing import Any

from tests.helpers import err, ok, rows

TABLE = ("CREATE NAMESPACE dv; CREATE TABLE dv.t (k BIGINT PRIMARY KEY, v INT DEFAULT 7, "
         "w TEXT, b BYTES DEFAULT 'ab', d DECIMAL(6,3) DEFAULT 1.5, "
         "nn INT NOT NULL DEFAULT 3)")


async def test_default_as_a_value_is_the_columns_default(client: Any) -> None:
    await ok(client, TABLE)
    await ok(client, "INSERT INTO dv.t VALUES (1, DEFAULT, DEFAULT, DEFAULT, default, DEFAULT), "
                     "(2, 5, 'x', 'cd', 2, 4)")
    await ok(client, "INSERT INTO dv.t (w, k, v) VALUES (DEFAULT, 3, DEFAULT)")
    await ok(client, "INSERT INTO dv.t (k, w) VALUES (4, 'y')")
    res = await ok(client, "UPDATE dv.t SET v = DEFAULT, w = DEFAULT, b = DEFAULT, d = DEFAULT, "
                           "nn = DEFAULT WHERE k >= 2 AND k <> 3")
    assert res[0]["row_count"] == 2
    got = await rows(client, "SELECT k, v, w, b, d, nn FROM dv.t ORDER BY k")
    want = {"v": 7, "w": None, "b": "YWI=", "d": "1.500", "nn": 3}
    assert got == [{"k": k, **want} for k in (1, 2, 3, 4)]
    # A quoted "default" is a name, not the word.
    assert "\"default\" not found" in await err(client, 'UPDATE dv.t SET v = "default"',
                                                 "INVALID_ARGUMENT")


async def test_default_without_a_default_is_null_and_refused_where_not_null(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE dn; CREATE TABLE dn.t (k BIGINT PRIMARY KEY, "
                     "v INT NOT NULL, w TEXT)")
    assert "'v'" in await err(client, "INSERT INTO dn.t VALUES (1, DEFAULT, 'a')",
                              "INVALID_ARGUMENT")
    await ok(client, "INSERT INTO dn.t VALUES (1, 1, 'a')")
    assert "'v'" in await err(client, "UPDATE dn.t SET v = DEFAULT", "INVALID_ARGUMENT")
    await ok(client, "UPDATE dn.t SET w = DEFAULT")
    assert await rows(client, "SELECT k, v, w FROM dn.t") == [{"k": 1, "v": 1, "w": None}]


async def test_insert_default_values(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE dd; CREATE TABLE dd.t (k BIGINT PRIMARY KEY DEFAULT 1, "
                     "v TEXT DEFAULT 'x')")
    await ok(client, "INSERT INTO dd.t DEFAULT VALUES")
    assert await rows(client, "SELECT k, v FROM dd.t") == [{"k": 1, "v": "x"}]
    assert "'v'" not in await err(client, "INSERT INTO dd.t DEFAULT VALUES", "ALREADY_EXISTS")


async def test_default_values_with_a_column_list_or_by_name_is_refused(client: Any) -> None:
    """DuckDB refuses both (a parser error, a binder error); Cairn took them as
    a row of defaults."""
    await ok(client, "CREATE NAMESPACE dn; CREATE TABLE dn.t (k BIGINT PRIMARY KEY DEFAULT 1, "
                     "v TEXT DEFAULT 'x')")
    said = await err(client, "INSERT INTO dn.t (k) DEFAULT VALUES", "PARSE_ERROR")
    assert "column list and DEFAULT VALUES" in said
    said = await err(client, "INSERT INTO dn.t BY NAME DEFAULT VALUES", "INVALID_ARGUMENT")
    assert "BY NAME cannot be combined with DEFAULT VALUES" in said
    assert await rows(client, "SELECT k, v FROM dn.t") == []
