"""A write statement whose table a RESTORE ... WITH (replace = true) swapped
while the statement waited for it runs on the new table (storage/resolve.py
`written`, TableState.writing). It answered NOT_FOUND "Table 'app.m' does not
exist" for a table there before, during and after the swap (27 UPDATEs and an
INSERT in 20 s beside a restore loop). Found by trying."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from storage import dml
from storage.timing import WouldWait, waiting_allowed
from tests.helpers import ok, rows, sql


@pytest.mark.parametrize(("text", "after", "want"), [
    ("UPDATE app.m SET v = v + 10 WHERE id = 1", "SELECT v FROM app.m WHERE id = 1",
     [{"v": 11}]),  # the restored row (v 1), not the replaced one (v 100)
    ("DELETE FROM app.m WHERE id = 5", "SELECT count(*) AS n FROM app.m WHERE id = 5",
     [{"n": 0}]),
    ("INSERT INTO app.m VALUES (7, 1 + 1)", "SELECT v FROM app.m WHERE id = 7", [{"v": 2}]),
])
async def test_a_write_that_waited_through_a_restore_runs_on_the_new_table(
        client: Any, monkeypatch: pytest.MonkeyPatch, text: str, after: str,
        want: list[dict[str, Any]]) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.m (id BIGINT PRIMARY KEY, v BIGINT);"
                     "INSERT INTO app.m VALUES (1, 1), (5, 5); BACKUP DATABASE app TO 'nightly';"
                     "UPDATE app.m SET v = 100 WHERE id = 1")
    real, seen = dml.resolve, []
    parked, go = threading.Event(), threading.Event()

    def resolve(engine: Any, node: Any, ns: str | None) -> Any:
        """The table looked up, then (the first time) the statement parked
        until the restore has swapped it."""
        st = real(engine, node, ns)
        if not waiting_allowed():
            raise WouldWait("a test's park")  # run again on a statement thread
        seen.append(st)
        if len(seen) == 1:
            parked.set()
            assert go.wait(30)
        return st

    monkeypatch.setattr(dml, "resolve", resolve)
    task = asyncio.create_task(sql(client, text))
    assert await asyncio.to_thread(parked.wait, 30)
    await ok(client, "RESTORE DATABASE app FROM 'nightly' WITH (replace = true)")
    go.set()
    status, body = await task
    assert status == 200 and body["results"][0]["row_count"] == 1, body
    assert seen[0].dropped and not seen[1].dropped and seen[1].uid != seen[0].uid
    assert await rows(client, after) == want
    assert await rows(client, "SELECT count(*) AS n FROM app.m WHERE id = 1") == [{"n": 1}]


async def test_a_write_that_waited_through_a_drop_table_is_not_found(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Looked up again, a table dropped meanwhile is gone: NOT_FOUND, as before."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.m (id BIGINT PRIMARY KEY, v BIGINT)")
    real, parked, go = dml.resolve, threading.Event(), threading.Event()

    def resolve(engine: Any, node: Any, ns: str | None) -> Any:
        st = real(engine, node, ns)
        if not waiting_allowed():
            raise WouldWait("a test's park")
        if not parked.is_set():
            parked.set()
            assert go.wait(30)
        return st

    monkeypatch.setattr(dml, "resolve", resolve)
    task = asyncio.create_task(sql(client, "UPDATE app.m SET v = 2 WHERE id = 1"))
    assert await asyncio.to_thread(parked.wait, 30)
    await ok(client, "DROP TABLE app.m")
    go.set()
    status, body = await task
    assert status == 404 and body["error"]["message"] == "Table 'app.m' does not exist", body


def test_a_table_replaced_at_every_try_is_unavailable() -> None:
    """A restore or DDL in a loop, winning every time: 503, never a write."""
    from catalog.errors import Unavailable
    from storage.resolve import WRITE_ATTEMPTS, Replaced, written
    tries = []

    def run() -> int:
        tries.append(1)
        raise Replaced("app.m")

    with pytest.raises(Unavailable, match="kept being replaced"):
        written(run)
    assert len(tries) == WRITE_ATTEMPTS
