"""ALTER TABLE and DROP TABLE whose table a RESTORE ... WITH
(replace = true) swapped while the statement waited for it (it had looked the
table up, then waited for its locks, which the install held) run on the new
table, as an INSERT, UPDATE or DELETE does (test_write_beside_restore.py).
They answered NOT_FOUND "Table 'app.m' does not exist" for a table there
before, during and after the swap (ALTER: 4 of 1,496 beside a restore loop;
DROP TABLE IF EXISTS then said "does not exist, skipped" and left the table
in place)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.helpers import ok, rows, sql, state


def park_first_lookup(client: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[
        threading.Event, threading.Event, list[Any]]:
    """The next lookup of app.m's state (by the statement under test) returns
    the state, then waits until the test says go: the restore swaps it meanwhile."""
    registry = state(client).engine.tables
    real, seen = registry.state, []
    parked, go = threading.Event(), threading.Event()

    def looked_up(namespace: str, name: str) -> Any:
        st = real(namespace, name)
        if (namespace, name) == ("app", "m"):
            seen.append(st)
            if len(seen) == 1:
                parked.set()
                assert go.wait(30)
        return st

    monkeypatch.setattr(registry, "state", looked_up)
    return parked, go, seen


async def restored_while_parked(client: Any, monkeypatch: pytest.MonkeyPatch,
                                text: str) -> tuple[int, dict[str, Any], list[Any]]:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.m (id BIGINT PRIMARY KEY, v BIGINT);"
                     "INSERT INTO app.m VALUES (1, 1); BACKUP DATABASE app TO 'nightly';"
                     "INSERT INTO app.m VALUES (2, 2)")
    parked, go, seen = park_first_lookup(client, monkeypatch)
    task = asyncio.create_task(sql(client, text))
    assert await asyncio.to_thread(parked.wait, 30)
    restore = asyncio.create_task(
        sql(client, "RESTORE DATABASE app FROM 'nightly' WITH (replace = true)"))
    for _ in range(600):  # the restore has removed the old table (its state marked dropped)
        if seen[0].dropped or restore.done():
            break
        await asyncio.sleep(0.1)
    assert seen[0].dropped, await restore
    go.set()
    status, body = await task
    assert (await restore)[0] == 200
    return status, body, seen


@pytest.mark.parametrize("text", ["ALTER TABLE app.m ADD COLUMN w TEXT",
                                  "ALTER TABLE app.m DROP COLUMN v"])
async def test_an_alter_that_waited_through_a_restore_changes_the_new_table(
        client: Any, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    status, body, seen = await restored_while_parked(client, monkeypatch, text)
    assert status == 200, body
    assert not seen[-1].dropped and seen[-1].uid != seen[0].uid
    columns = [r["column_name"] for r in await rows(client, "DESCRIBE TABLE app.m")]
    assert ("w" in columns) == ("ADD" in text) and ("v" in columns) == ("ADD" in text)
    assert await rows(client, "SELECT id FROM app.m") == [{"id": 1}]  # the restored rows


@pytest.mark.parametrize("text", ["DROP TABLE app.m", "DROP TABLE IF EXISTS app.m"])
async def test_a_drop_table_that_waited_through_a_restore_drops_the_new_table(
        client: Any, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    status, body, _ = await restored_while_parked(client, monkeypatch, text)
    assert status == 200, body
    assert "skipped" not in (body["results"][0].get("message") or ""), body
    assert await rows(client, "SHOW TABLES IN app") == []


async def test_a_flush_that_waited_through_a_restore_flushes_the_new_table(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """It said "Table 'app.m' was dropped while it was flushed: nothing left to
    flush" (200) of a table there throughout."""
    status, body, seen = await restored_while_parked(client, monkeypatch, "FLUSH TABLE app.m")
    assert status == 200, body
    assert "dropped" not in body["results"][-1]["message"], body
    assert not seen[-1].dropped
    assert await rows(client, "SELECT id FROM app.m ORDER BY id") == [{"id": 1}]
