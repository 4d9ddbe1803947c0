"""Bounded work: answers cut at [server] max_result_rows / max_result_bytes,
the statement timeout on every statement that runs a query, and slow clients
that never finish their headers or body are disconnected."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from server.app import connection_options, create_app
from server.config import Config
from storage.value_bounds import CONSTANT_MAX, ROW_MAX
from tests.helpers import err, ok, rows, sql

SLOW = "(SELECT count(*) FROM range(100000000) a, range(100000) b)"


async def _bounded(aiohttp_client: Any, cairn_config: Config, timeout: float) -> Any:
    cairn_config.server.max_result_rows = 10
    cairn_config.server.max_result_bytes = 100_000
    cairn_config.server.query_timeout_seconds = timeout
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t SELECT i, 'v' || i FROM range(25) r(i)")
    return client


@pytest.fixture
async def bounded(aiohttp_client: Any, cairn_config: Config) -> Any:
    # A value built within the bounds must finish: len(range(CONSTANT_MAX))
    # took 0.61 s on a loaded CI machine, past a 0.5 s timeout.
    return await _bounded(aiohttp_client, cairn_config, 10.0)


@pytest.fixture
async def timed(aiohttp_client: Any, cairn_config: Config) -> Any:
    return await _bounded(aiohttp_client, cairn_config, 0.5)


async def test_an_answer_over_max_result_rows_is_cut(bounded: Any) -> None:
    for text in ("SELECT * FROM app.t", "SELECT * FROM range(1000000)",
                 "SELECT id FROM app.t ORDER BY id DESC", "SELECT * FROM app.t LIMIT 11"):
        res = (await ok(bounded, text))[0]
        assert res["truncated"] is True, text
        assert res["row_count"] == len(res["rows"]) == 10
        assert "truncated" in res["message"] and "max_result_rows" in res["message"]
    res = (await ok(bounded, "SELECT id FROM app.t ORDER BY id DESC"))[0]
    assert [r["id"] for r in res["rows"]] == list(range(24, 14, -1))  # the first rows, in order
    for text in ("SELECT * FROM app.t LIMIT 10", "SELECT * FROM range(10)",
                 "SELECT count(*) FROM range(1000000)"):
        res = (await ok(bounded, text))[0]
        assert "truncated" not in res and res["row_count"] <= 10, text


# Each of these took DuckDB seconds to minutes and gigabytes past its memory
# limit (range(300000000): 76 s, 15 GB), deaf to the timeout: refused first.
BUILDERS_REFUSED = [
    ("SELECT range(300000000)", "range()"),
    ("SELECT len(generate_series(1, 300000000))", "generate_series()"),
    ("SELECT * FROM unnest(range(10000000))", "range()"),
    ("SELECT range(id) FROM app.t", "range()"),
    ("SELECT repeat('x', 2000000000)", "repeat()"),
    ("SELECT repeat('ab', 600000)", "repeat()"),  # 1.2 MB from a short count
    ("SELECT repeat(v, 3) FROM app.t", "repeat()"),
    ("SELECT lpad('x', 900000000, 'y')", "lpad()"),
    (f"SELECT rpad(v, {ROW_MAX + 1}) FROM app.t", "rpad()"),
    ("SELECT lpad(v, id) FROM app.t", "lpad()"),
    ("SELECT list_resize([1], 300000000)", "list_resize()"),
    ("SELECT bitstring('1', 2000000000)", "bitstring()"),
    ("SELECT printf('%900000000d', 1)", "printf()"),
    ("SELECT printf('%*d', 900000000, 1)", "printf()"),
    ("SELECT format('{:>{}}', 'x', 900000000)", "format()"),
    ("SELECT printf(v, 1) FROM app.t", "printf()"),
]


@pytest.mark.parametrize(("text", "name"), BUILDERS_REFUSED)
async def test_a_value_built_from_a_number_is_bounded(bounded: Any, text: str, name: str) -> None:
    message = await err(bounded, text, "INVALID_ARGUMENT")
    assert name in message, message


async def test_values_within_the_bounds_are_built(bounded: Any) -> None:
    one = (await rows(bounded, f"SELECT lpad('7', 3, '0') AS p, len(range({CONSTANT_MAX})) AS n, "
                               "repeat('ab', 3) AS r, printf('%5d|', 42) AS f, "
                               "format('{:>4}|{{}}', 'x') AS g, len(generate_series(1, 10)) AS s"))
    assert one == [{"p": "007", "n": CONSTANT_MAX, "r": "ababab", "f": "   42|",
                    "g": "   x|{}", "s": 10}]
    padded = await rows(bounded, f"SELECT length(lpad(v, {ROW_MAX}, '.')) AS n FROM app.t "
                                 "WHERE id < 2 ORDER BY id")
    assert padded == [{"n": ROW_MAX}, {"n": ROW_MAX}]
    # FROM range(...) streams rows, bounded by the answer's limits instead.
    res = (await ok(bounded, "SELECT * FROM range(300000000)"))[0]
    assert res["truncated"] is True and res["row_count"] == 10


async def test_system_tables_are_cut_too(bounded: Any) -> None:
    await ok(bounded, "; ".join(f"CREATE NAMESPACE n{i}" for i in range(12)))
    for text in ("SELECT * FROM system.namespaces", "SELECT namespace FROM system.namespaces"):
        res = (await ok(bounded, text))[0]
        assert res["truncated"] is True and res["row_count"] == 10, text


async def test_an_answer_over_max_result_bytes_is_cut(bounded: Any) -> None:
    res = (await ok(bounded, "SELECT repeat('x', 30000) AS s FROM range(8)"))[0]
    assert res["truncated"] is True
    assert 1 <= res["row_count"] <= 3
    assert all(len(r["s"]) == 30000 for r in res["rows"])
    # One value over the bound on its own: the answer has no row, and says why.
    res = (await ok(bounded, "SELECT repeat('x', 200000) AS s"))[0]
    assert res["truncated"] is True and res["rows"] == []


async def test_a_requests_answers_share_the_bounds(bounded: Any) -> None:
    """max_result_rows / max_result_bytes bound all the answers of one request
    together: 12 SELECTs each just under the bound (575 bytes of SQL) made a
    720 MB body. Each answer gets what those before it left, cut as one is."""
    res = await ok(bounded, "SELECT * FROM range(6); SELECT * FROM range(6); SELECT 1 AS one")
    assert [r["row_count"] for r in res] == [6, 4, 0]
    assert "truncated" not in res[0]
    assert res[1]["truncated"] is True and res[2]["truncated"] is True
    assert [r["range"] for r in res[1]["rows"]] == [0, 1, 2, 3]  # its first rows
    assert "earlier answers" in res[1]["message"] and "max_result_rows" in res[1]["message"]
    # Bytes (Arrow sizes, 100,000 here): 3 rows of 30 KB fit, whichever statements hold them.
    res = await ok(bounded, "; ".join(["SELECT repeat('x', 30000) AS s FROM range(2)"] * 4))
    assert [r["row_count"] for r in res] == [2, 1, 0, 0]
    assert [bool(r.get("truncated")) for r in res] == [False, True, True, True]
    assert sum(len(r["s"]) for one in res for r in one["rows"]) == 90000
    # A request after it has the whole bound again.
    assert (await ok(bounded, "SELECT * FROM range(10)"))[0]["row_count"] == 10


async def test_statements_past_the_shared_bound_still_run(bounded: Any) -> None:
    """A write after the answers spent the bound runs and says so; a failure
    after it keeps the contract: the results before it, its own error."""
    res = await ok(bounded, "SELECT * FROM app.t LIMIT 10; INSERT INTO app.t VALUES (100, 'w');"
                            "SELECT v FROM app.t WHERE id = 100")
    assert res[1]["message"] == "1 row inserted" and res[1]["row_count"] == 1
    assert res[2]["rows"] == [] and res[2]["truncated"] is True
    assert await rows(bounded, "SELECT v FROM app.t WHERE id = 100") == [{"v": "w"}]
    status, body = await sql(bounded, "SELECT * FROM range(10);"
                                      "INSERT INTO app.t VALUES (101, 'w'); SELECT nope FROM app.t")
    assert status == 400 and body["error"]["statement"] == 3, body
    assert [r["row_count"] for r in body["results"]] == [10, 1]
    assert await rows(bounded, "SELECT v FROM app.t WHERE id = 101") == [{"v": "w"}]


async def test_zero_means_no_bound(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.server.max_result_rows = 0
    cairn_config.server.max_result_bytes = 0
    client = await aiohttp_client(create_app(cairn_config))
    res = (await ok(client, "SELECT * FROM range(300000)"))[0]
    assert res["row_count"] == 300000 and "truncated" not in res


async def test_a_big_select_streams_only_what_it_returns(aiohttp_client: Any,
                                                         cairn_config: Config) -> None:
    """6M rows asked, 1000 allowed: DuckDB stops producing after the first batches
    (the 6M-row answer is never materialized; bench/bounds.py measures memory)."""
    cairn_config.server.max_result_rows = 1000
    client = await aiohttp_client(create_app(cairn_config))
    res = (await ok(client, "SELECT i, repeat('x', 100) AS s FROM range(6000000) r(i)"))[0]
    assert res["truncated"] is True and res["row_count"] == 1000
    assert res["rows"][999]["i"] == 999


async def test_the_statement_timeout_covers_writes(timed: Any) -> None:
    for text in (f"SELECT {SLOW}",
                 f"INSERT INTO app.t SELECT {SLOW} + 100, 'x'",
                 f"UPDATE app.t SET v = 'y' WHERE id IN {SLOW}",
                 f"DELETE FROM app.t WHERE id IN {SLOW}"):
        started = time.monotonic()
        status, body = await sql(timed, text)
        assert status == 409 and body["error"]["code"] == "CANCELLED", (text, body)
        assert time.monotonic() - started < 30
    rows = (await ok(timed, "SELECT count(*) AS n FROM app.t WHERE v = 'v1'"))[0]["rows"]
    assert rows == [{"n": 1}]  # nothing was written


# --- slow clients ---------------------------------------------------------------


@pytest.fixture
async def slow_server(cairn_config: Config) -> Any:
    cairn_config.server.header_timeout_seconds = 1.0
    cairn_config.server.body_timeout_seconds = 1.0
    cairn_config.server.send_timeout_seconds = 1.0
    server = TestServer(create_app(cairn_config))
    await server.start_server(**connection_options(cairn_config))
    yield server
    await server.close()


async def _until_closed(reader: asyncio.StreamReader, limit: float) -> tuple[bytes, float]:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), timeout=limit)
    return data, time.monotonic() - started


async def test_half_a_header_is_disconnected(slow_server: Any) -> None:
    reader, writer = await asyncio.open_connection(slow_server.host, slow_server.port)
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Ty")
    await writer.drain()
    data, waited = await _until_closed(reader, 20)
    writer.close()
    assert data == b"" and waited < 15


async def test_an_idle_connection_is_disconnected(slow_server: Any) -> None:
    reader, writer = await asyncio.open_connection(slow_server.host, slow_server.port)
    data, waited = await _until_closed(reader, 20)
    writer.close()
    assert data == b"" and waited < 15


async def test_half_a_body_is_answered_408_and_disconnected(slow_server: Any) -> None:
    reader, writer = await asyncio.open_connection(slow_server.host, slow_server.port)
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"sql\": \"SEL")
    await writer.drain()
    data, waited = await _until_closed(reader, 20)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b"INVALID_REQUEST" in data and b"body_timeout_seconds" in data
    assert waited < 15


async def test_a_prompt_client_is_not_hurried(slow_server: Any) -> None:
    """The limits are on idleness and slowness, not on a request's own work."""
    reader, writer = await asyncio.open_connection(slow_server.host, slow_server.port)
    body = b'{"sql": "SELECT 1 AS one"}'
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    await writer.drain()
    data, _ = await _until_closed(reader, 20)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    answer = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert answer["results"][0]["rows"] == [{"one": 1}]


BIG = "SELECT i, repeat('x', 200) AS pad FROM range(60000) r(i)"  # ~14 MB of JSON


def _request(text: str) -> bytes:
    body = json.dumps({"sql": text}).encode()
    return (b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def test_a_client_that_does_not_read_its_answer_is_disconnected(slow_server: Any) -> None:
    """A client that never read its answer held it in the server's memory for
    good (4 such clients of a 60 MB SELECT: 600 MB, minutes later). Now one that
    takes none of it for send_timeout_seconds is disconnected."""
    reader, writer = await asyncio.open_connection(slow_server.host, slow_server.port,
                                                   limit=4096)
    writer.write(_request(BIG))
    await writer.drain()
    await asyncio.sleep(4)  # read nothing meanwhile (the reader stops at its limit)
    data, _ = await _until_closed(reader, 30)
    writer.close()
    head, _, got = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert length > 10_000_000 and len(got) < length  # cut off, not sent whole


async def test_a_large_answer_is_sent_whole_to_a_reading_client(slow_server: Any) -> None:
    reader, writer = await asyncio.open_connection(slow_server.host, slow_server.port)
    writer.write(_request(BIG).replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
    await writer.drain()
    data, _ = await _until_closed(reader, 60)
    writer.close()
    answer = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert answer["results"][0]["row_count"] == 60000


async def test_show_and_describe_answers_share_the_bounds(bounded: Any) -> None:
    """SHOW and DESCRIBE answers were never cut: `"SHOW TABLES IN many;" * 10000`
    (200 KB) answered 148 MB past 64 MiB. They take the request's bounds too."""
    await ok(bounded, "CREATE NAMESPACE many; " + "; ".join(
        f"CREATE TABLE many.t{i} (id INT PRIMARY KEY)" for i in range(12)))
    res = await ok(bounded, "SHOW TABLES IN many")
    assert res[0]["row_count"] == 10 and res[0]["truncated"] is True
    assert "earlier answers" not in res[0]["message"]  # alone in its request
    res = await ok(bounded, "SELECT * FROM range(8); SHOW TABLES IN many; DESCRIBE many.t1")
    assert [r["row_count"] for r in res] == [8, 2, 0]
    assert res[1]["truncated"] is True and res[2]["truncated"] is True
    assert "earlier answers" in res[1]["message"]
    res = await ok(bounded, "; ".join(["SHOW TABLES IN many"] * 50))
    assert sum(r["row_count"] for r in res) == 10
