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


async def test_pgwire_catalog_beside_a_restore(client: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """information_schema and pg_catalog over pgwire (relations.Snapshot): the
    tables listed, then each one's state looked up by name. A swap between
    the two listed the old namespace's tables less those the backup does not
    hold, with the restored tables' columns: neither namespace."""
    from server.pgwire import relations

    cairn = state(client)
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.a (id BIGINT PRIMARY KEY);"
                     "CREATE TABLE app.fresh (id BIGINT PRIMARY KEY);"
                     "BACKUP DATABASE app TO 'nightly'; DROP TABLE app.fresh;"
                     "CREATE TABLE app.gone (id BIGINT PRIMARY KEY);"
                     "ALTER TABLE app.a ADD COLUMN later TEXT")
    parked, go = threading.Event(), threading.Event()
    for name in ("state", "state_for"):
        for owner in (cairn.engine, cairn.engine.tables):
            real = getattr(owner, name, None)
            if real is None:
                continue

            def looked_up(*args: Any, _real: Any = real) -> Any:
                once(parked, go)
                return _real(*args)
            monkeypatch.setattr(owner, name, looked_up)
    task = asyncio.create_task(asyncio.to_thread(relations.Snapshot, cairn, "admin"))
    assert await asyncio.to_thread(parked.wait, 30)
    monkeypatch.undo()
    restored = await sql(client, "RESTORE DATABASE app FROM 'nightly' WITH (replace = true)")
    assert restored[0] == 200, restored
    go.set()
    snapshot = await task
    listed = {(t[1], tuple(c[0] for c in t[3])) for t in snapshot.tables if t[0] == "app"}
    old = {("a", ("id", "_updated", "_deleted", "later")), ("gone", ("id", "_updated", "_deleted"))}
    new = {("a", ("id", "_updated", "_deleted")), ("fresh", ("id", "_updated", "_deleted"))}
    assert listed in (old, new), listed
