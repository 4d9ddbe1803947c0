"""JSON an older Cairn stored that a write now refuses: until 2026-12-02 its
write check was json.loads, which takes `1e400` (read as infinity), `-1e999`,
`[1e400]`, NaN and Infinity. After an upgrade BACKUP copied such a value and
said `completed`, while VERIFY called the backup invalid ("not valid JSON
(Number out of range)") and RESTORE refused it, the older server's own
backups too; a segment archived holding one was "corrupt" and RESTORE as_of
past it 422. Now VERIFY, RESTORE and the archive's replay take what
json.loads took (jsoncheck.kept_json_problem), and a new write stays strict.

The values are written here as the older Cairn did: through the write path
with today's check taken out."""

from __future__ import annotations

from typing import Any

import pytest

from storage import types
from tests.archive.test_archiving import FAST, wait_shipped
from tests.helpers import err, ok, rows, sql

KEPT = ["1e400", "-1e999", "[1e400]", "NaN", '{"a": -Infinity}']
VALUES = ", ".join(f"({i}, '{v}')" for i, v in enumerate(KEPT, 1))


async def stored_as_older(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:  # the older write check: json.loads alone
        m.setattr(types, "json_problem", lambda _text: None)
        await ok(client, f"INSERT INTO app.t VALUES {VALUES}")


async def shown(client: Any, ns: str) -> list[Any]:
    return [r["j"] for r in await rows(client, f"SELECT k, j FROM {ns}.t ORDER BY k")]


async def test_backup_of_json_an_older_release_stored_verifies_and_restores(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, j JSON)")
    await stored_as_older(client, monkeypatch)
    await ok(client, "FLUSH TABLE app.t")
    before = await shown(client, "app")
    assert before == KEPT  # shown as the text kept (a string: no JSON reader takes it bare)
    await err(client, "INSERT INTO app.t VALUES (9, '1e400')", "INVALID_ARGUMENT")  # still strict
    done = (await rows(client, "BACKUP DATABASE app TO 'kj'"))[0]
    assert done["status"] == "completed"
    report = (await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'kj'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, "RESTORE DATABASE app FROM 'kj' AS back")
    assert await shown(client, "back") == before


async def test_a_segment_holding_json_an_older_release_stored_replays(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY, j JSON)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await stored_as_older(client, monkeypatch)
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    status, body = await sql(client, "RESTORE DATABASE app FROM 'arch' AS back "
                                     f"WITH (as_of = '{point['end_time']}')")
    assert status == 200, body
    assert await shown(client, "back") == KEPT
