"""Text at the door: invalid Unicode (a lone surrogate, sent as a valid JSON
escape or as bytes that are not UTF-8) is refused with 400 INVALID_REQUEST in
every text-bearing place of every statement; odd but valid text (NUL, emoji,
bidi controls, non-characters) is stored and read back; and afterwards every
system table still reads, before and after a restart."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from server.text import check_text
from storage.system_tables import NAMES
from tests.e2e.test_roles import CASES
from tests.helpers import ok, sql

BAD = ["\ud800", "\udfff", "a\udc80b", "\ud83d"]  # lone surrogates (high, low, escaped byte)
ODD = ["\x00", "a\x00b", "\U0001F600", "\u202e\u202d", "\uffff", "\ufeff", "e\u0301", "\u2028"]

# Every place of a statement that carries text; {x} is where it goes.
TEXT_STATEMENTS = [
    "SELECT '{x}'",
    "SELECT 1 -- {x}",
    "SELECT \"{x}\" FROM app.notes",
    "INSERT INTO app.notes VALUES (100, '{x}')",
    "INSERT INTO app.notes (id, body) SELECT 101, '{x}'",
    "UPDATE app.notes SET body = '{x}' WHERE id = 1",
    "DELETE FROM app.notes WHERE body = '{x}'",
    "CREATE NAMESPACE \"{x}\"",
    "CREATE TABLE app.\"{x}\" (id BIGINT)",
    "CREATE TABLE app.d (id BIGINT, v TEXT DEFAULT '{x}')",
    "ALTER TABLE app.notes ADD COLUMN c TEXT DEFAULT '{x}'",
    "DESCRIBE TABLE app.\"{x}\"",
    "SHOW TABLES IN \"{x}\"",
    "FLUSH TABLE app.\"{x}\"",
    "BACKUP DATABASE app TO 'nightly' WITH (label = '{x}')",
    "BACKUP DATABASE app TO '{x}'",
    "BACKUP DATABASE app TO 'enc' WITH (encryption_passphrase = '{x}')",
    "RESTORE DATABASE app FROM '{x}' AS app2",
    "RESTORE DATABASE app FROM 'nightly' AS app2 WITH (backup_id = '{x}')",
    "RESTORE DATABASE app FROM 'nightly' AS app2 WITH (as_of = '{x}')",
    "SHOW BACKUPS IN '{x}'",
    "SHOW BACKUP '{x}'",
    "VERIFY BACKUP '{x}'",
    "DROP BACKUP '{x}'",
    "KILL JOB '{x}'",
    "CREATE SCHEDULE s FOR BACKUP DATABASE app TO '{x}' EVERY '1d'",
    "CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'nightly' EVERY '{x}'",
    "CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'nightly' EVERY '1d' WITH (label = '{x}')",
    "DROP SCHEDULE \"{x}\"",
]


def test_check_text_names_the_place() -> None:
    assert check_text("fine \U0001F600 \x00", "x") == "fine \U0001F600 \x00"
    from catalog.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=r"U\+D800 .* line 2, column 3"):
        check_text("ab\ncd\ud800", '"sql"')


async def setup(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT); "
                     "INSERT INTO app.notes VALUES (1, 'one')", user="u1")
    await ok(client, "BACKUP DATABASE app TO 'nightly'")


async def post_raw(client: Any, body: bytes, headers: dict[str, str] | None = None
                   ) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/sql", data=body,
                             headers={"Content-Type": "application/json", **(headers or {})})
    return resp.status, await resp.json()


def refused(status: int, body: dict[str, Any], what: str) -> None:
    assert status == 400, (what, status, body)
    assert body["error"]["code"] == "INVALID_REQUEST", (what, body)
    assert "Unicode" in body["error"]["message"], (what, body)


async def read_everything(client: Any) -> None:
    """Every system table and the user table read back whole, by admin and by user."""
    for name in NAMES:
        for user in (None, "u1"):
            await ok(client, f"SELECT * FROM system.{name}", user=user)
            await ok(client, f"SELECT count(*) FROM system.{name}", user=user)
    await ok(client, "SELECT * FROM app.notes")
    await ok(client, "SHOW BACKUPS; SHOW SCHEDULES; SHOW NAMESPACES; SHOW TABLES")


async def test_invalid_unicode_is_refused_everywhere_and_nothing_breaks_a_read(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    client = await aiohttp_client(create_app(cairn_config))
    await setup(client)
    statements = TEXT_STATEMENTS + [
        c.sql.format(backup_id="bk-x", job_id="job-x") + " -- {x}"
        for cases in CASES.values() for c in cases
    ]
    for bad in BAD:
        for template in statements:
            text = template.replace("{x}", bad)
            # json.dumps writes the surrogate as the escape \ud800: valid JSON.
            status, body = await post_raw(client, json.dumps({"sql": text}).encode())
            refused(status, body, text)
        status, body = await post_raw(
            client, json.dumps({"sql": "SELECT 1", "namespace": bad}).encode())
        refused(status, body, "namespace")
    # Bytes that are not UTF-8: in the body, and in the headers a server reads.
    status, body = await post_raw(client, b'{"sql": "SELECT \'\xff\xfe\'"}')
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", body
    await read_everything(client)
    await client.close()

    client = await aiohttp_client(create_app(cairn_config))  # a restart
    await read_everything(client)
    rows = (await ok(client, "SELECT id, body FROM app.notes ORDER BY id"))[0]["rows"]
    assert rows == [{"id": 1, "body": "one"}]


async def test_headers_that_are_not_utf8_are_refused(aiohttp_client: Any,
                                                     cairn_config: Config) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t", "user": "root", "role": "admin"}]
    client = await aiohttp_client(create_app(cairn_config))
    host, port = client.server.host, client.server.port
    for header in (b"Authorization: Bearer \xff\xfe", b"Authorization: Bearer t\xed\xa0\x80",
                   b"X-User-Id: \xed\xa0\x80", b"Content-Type: application/json\xff"):
        body = b'{"sql": "SELECT 1"}'
        request = (b"POST /api/sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header
                   + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, payload = answer.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        assert status in (400, 401), (header, answer)
        assert json.loads(payload)["error"]["code"] in ("INVALID_REQUEST", "UNAUTHENTICATED")


async def test_odd_but_valid_text_is_stored_and_read_back(aiohttp_client: Any,
                                                          cairn_config: Config) -> None:
    client = await aiohttp_client(create_app(cairn_config))
    await setup(client)
    for i, odd in enumerate(ODD):
        for template in TEXT_STATEMENTS:
            text = template.replace("{x}", odd.replace("'", "''"))
            status, body = await sql(client, text, user="u1")
            assert status < 500, (text, body)
        await ok(client, f"INSERT INTO app.notes (id, body) VALUES ({1000 + i}, '{odd}')")
        await ok(client, f"BACKUP DATABASE app TO 'nightly' WITH (label = '{odd}')")
    await read_everything(client)
    labels = (await ok(client, "SELECT label FROM system.backups"))[0]["rows"]
    assert {r["label"] for r in labels} >= set(ODD)
    await client.close()

    client = await aiohttp_client(create_app(cairn_config))  # a restart
    await read_everything(client)
    rows = (await ok(client, "SELECT id, body FROM app.notes WHERE id >= 1000 ORDER BY id"))
    assert [r["body"] for r in rows[0]["rows"]] == ODD
