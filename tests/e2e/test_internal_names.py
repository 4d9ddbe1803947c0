"""Column names that Cairn's own SQL once used as aliases (`__mseq` in the
newest-version join, `__del` in the duplicate-key check, `__set0` in UPDATE):
valid names, so a table may have them. A key named `__mseq` made an updated
row vanish from every scan; a column `__set0` made every UPDATE a 500, a key
`__del` every duplicate INSERT after a FLUSH. Found by trying; now the
aliases hold a `#`, which no column name can."""

from __future__ import annotations

from typing import Any

from tests.helpers import err, ok, rows, sql


async def test_a_key_named_like_the_newest_version_join_keeps_its_rows(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE cm; CREATE TABLE cm.t (__mseq INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO cm.t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
                     "UPDATE cm.t SET v = 'a2' WHERE __mseq = 1")
    want = [{"__mseq": 1, "v": "a2"}, {"__mseq": 2, "v": "b"}, {"__mseq": 3, "v": "c"}]
    assert await rows(client, "SELECT __mseq, v FROM cm.t ORDER BY 1") == want
    await ok(client, "FLUSH TABLE cm.t; UPDATE cm.t SET v = 'a3' WHERE __mseq = 1")
    want[0]["v"] = "a3"
    assert await rows(client, "SELECT __mseq, v FROM cm.t ORDER BY 1") == want
    await err(client, "INSERT INTO cm.t VALUES (1, 'again')", "ALREADY_EXISTS")


async def test_columns_named_like_the_update_and_key_check_aliases(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE cz;"
                     "CREATE TABLE cz.a (id INT PRIMARY KEY, __set0 INT, v TEXT);"
                     "INSERT INTO cz.a VALUES (1, 42, 'old');"
                     "UPDATE cz.a SET v = 'new' WHERE id = 1;"
                     "UPDATE cz.a SET __set0 = __set0 + 1, v = v || '!' WHERE id = 1")
    assert await rows(client, "SELECT id, __set0, v FROM cz.a") == [
        {"id": 1, "__set0": 43, "v": "new!"}]
    await ok(client, "CREATE TABLE cz.c (__del INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO cz.c VALUES (1, 'a'), (2, 'b'); FLUSH TABLE cz.c;"
                     "DELETE FROM cz.c WHERE __del = 2; FLUSH TABLE cz.c")
    assert "duplicate primary key" in await err(client, "INSERT INTO cz.c VALUES (1, 'dup')",
                                                "ALREADY_EXISTS")
    await ok(client, "INSERT INTO cz.c VALUES (2, 'b-again')")
    assert await rows(client, "SELECT __del, v FROM cz.c ORDER BY 1") == [
        {"__del": 1, "v": "a"}, {"__del": 2, "v": "b-again"}]


async def test_no_column_can_be_named_like_the_aliases_now(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE cq")
    for name in ('"#mseq"', '"#del"', '"#set0"'):
        status, body = await sql(client, f"CREATE TABLE cq.t (id INT PRIMARY KEY, {name} INT)")
        assert status == 400 and body["error"]["code"] in ("PARSE_ERROR", "INVALID_ARGUMENT"), body
