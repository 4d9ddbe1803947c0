"""A DOUBLE primary key of NaN an older Cairn stored: until 2026-12-02
`INSERT ... SELECT 'NaN'::DOUBLE` took it (a write refuses it now:
keys.refuse_nan). After an upgrade BACKUP copied it and said `completed`,
while VERIFY called the backup invalid ("holds NaN k values") and RESTORE
refused it, the older server's own backups too. Now the row is one row of
its table, as DuckDB compares keys (NaN equals NaN): found by key, updated,
deleted, flushed, backed up, verified, restored and replayed from an archive.

The row is written here as the older Cairn did: through the write path with
today's NaN check taken out."""

from __future__ import annotations

from typing import Any

import pytest

from storage import keys as keys_mod
from tests.archive.test_archiving import FAST, wait_shipped
from tests.helpers import err, ok, rows

NAN = "'NaN'::DOUBLE"


async def stored_as_older(client: Any, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    with monkeypatch.context() as m:  # the older write path: no NaN check of keys
        m.setattr(keys_mod, "refuse_nan", lambda *_: None)
        await ok(client, text)


async def shown(client: Any, ns: str) -> list[dict[str, Any]]:
    return await rows(client, f"SELECT k::TEXT AS k, v FROM {ns}.t ORDER BY k")


async def nan_table(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k DOUBLE PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1.5, 'one')")
    await stored_as_older(client, monkeypatch, f"INSERT INTO app.t SELECT {NAN}, 'nan key'")


async def test_a_nan_key_an_older_release_stored_is_a_row_and_backs_up(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await nan_table(client, monkeypatch)
    await ok(client, "FLUSH TABLE app.t")
    assert await shown(client, "app") == [{"k": "1.5", "v": "one"}, {"k": "nan", "v": "nan key"}]
    assert await rows(client, f"SELECT v FROM app.t WHERE k = {NAN}") == [{"v": "nan key"}]
    assert "cannot be NaN" in await err(
        client, f"INSERT INTO app.t SELECT {NAN}, 'x'", "INVALID_ARGUMENT")  # still strict
    assert (await ok(client, f"UPDATE app.t SET v = 'kept' WHERE k = {NAN}"))[0]["row_count"] == 1
    await ok(client, "FLUSH TABLE app.t")
    expected = [{"k": "1.5", "v": "one"}, {"k": "nan", "v": "kept"}]
    assert await shown(client, "app") == expected
    done = (await rows(client, "BACKUP DATABASE app TO 'nk'"))[0]
    assert done["status"] == "completed"
    report = (await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'nk'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, "RESTORE DATABASE app FROM 'nk' AS back")
    assert await shown(client, "back") == expected
    assert await rows(client, f"SELECT v FROM back.t WHERE k = {NAN}") == [{"v": "kept"}]
    assert (await ok(client, f"DELETE FROM back.t WHERE k = {NAN}"))[0]["row_count"] == 1
    assert await shown(client, "back") == expected[:1]


async def test_an_archived_nan_key_replays(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k DOUBLE PRIMARY KEY, v TEXT)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1.5, 'one')")
    await stored_as_older(client, monkeypatch, f"INSERT INTO app.t SELECT {NAN}, 'nan key'")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    restore = f"RESTORE DATABASE app FROM 'arch' AS {{}} WITH (as_of = '{point['end_time']}')"
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    await ok(client, restore.format("back"))
    assert await shown(client, "back") == [{"k": "1.5", "v": "one"}, {"k": "nan", "v": "nan key"}]



async def test_nan_in_a_flushed_double_column_is_found_by_a_filter(client: Any) -> None:
    """Arrow leaves NaN out of a file's min and max, and DuckDB skipped the
    row group by them: after a FLUSH these found nothing and deleted nothing."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.d (k INT PRIMARY KEY, x DOUBLE);"
                     f"INSERT INTO app.d VALUES (1, 1.5), (2, {NAN}); FLUSH TABLE app.d")
    for where in (f"x = {NAN}", "isnan(x)", "x > 2"):
        assert await rows(client, f"SELECT k FROM app.d WHERE {where}") == [{"k": 2}], where
    assert (await ok(client, f"DELETE FROM app.d WHERE x = {NAN}"))[0]["row_count"] == 1
    assert await rows(client, "SELECT k FROM app.d") == [{"k": 1}]
