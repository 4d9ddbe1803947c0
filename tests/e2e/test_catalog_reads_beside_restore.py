"""DESCRIBE TABLE and system.tables read a table's record, then its schema or
its state: a RESTORE ... WITH (replace = true) swapping the table between the
two reads made DESCRIBE a 500 (the old table's schemas were gone: an empty
list indexed) and left the table out of system.tables (its counts could not
be read, so the row was skipped) or listed it with 0 rows and 0 files (its
state emptied). Either is read wholly before or wholly after the swap."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import ok, rows, sql, state


async def parked_through_a_restore(client: Any, park: Callable[[threading.Event, threading.Event],
                                                               None], text: str) -> Any:
    """`text` run while `park` (armed with parked/go events) holds it between
    its two reads until a RESTORE ... replace has swapped app.m."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.m (id BIGINT PRIMARY KEY, v BIGINT);"
                     "INSERT INTO app.m VALUES (1, 1); FLUSH TABLE app.m;"
                     "BACKUP DATABASE app TO 'nightly'")
    parked, go = threading.Event(), threading.Event()
    park(parked, go)
    task = asyncio.create_task(sql(client, text))
    assert await asyncio.to_thread(parked.wait, 30)
    restored = await sql(client, "RESTORE DATABASE app FROM 'nightly' WITH (replace = true)")
    assert restored[0] == 200, restored
    go.set()
    return await task


def once(parked: threading.Event, go: threading.Event) -> None:
    if not parked.is_set():
        parked.set()
        assert go.wait(30)


async def test_describe_beside_a_restore(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = state(client).engine.tables
    real = registry.schemas

    def park(parked: threading.Event, go: threading.Event) -> None:
        def schemas(uid: str) -> Any:
            once(parked, go)
            return real(uid)
        monkeypatch.setattr(registry, "schemas", schemas)

    status, body = await parked_through_a_restore(client, park, "DESCRIBE TABLE app.m")
    assert status == 200, body
    assert [r["column_name"] for r in body["results"][0]["rows"]][:2] == ["id", "v"]


async def test_system_tables_beside_a_restore(client: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    engine = state(client).engine
    real = engine.stats

    def park(parked: threading.Event, go: threading.Event) -> None:
        def stats(rec: Any) -> Any:
            if rec.namespace == "app":
                once(parked, go)
            return real(rec)
        monkeypatch.setattr(engine, "stats", stats)

    status, body = await parked_through_a_restore(
        client, park, "SELECT table_name, flushed_rows, files FROM system.tables "
                      "WHERE namespace = 'app'")
    assert status == 200, body
    assert body["results"][0]["rows"] == [{"table_name": "m", "flushed_rows": 1, "files": 1}]
    assert await rows(client, "SELECT count(*) AS n FROM app.m") == [{"n": 1}]
