"""Rows whose primary key is NULL, left by an older Cairn's
`UPDATE ns.t AS x RIGHT JOIN range(2) r(i) ON false SET ...` (refused now, and
the write path refuses new versions with a NULL key: keys.refuse_null).

On a table holding some, every whole-table UPDATE and DELETE failed ("Column
'k' is part of the primary key and would be NULL in 2 row(s)"). Now UPDATE
and DELETE pass them by (not counted; a statement that found only them is
INVALID_ARGUMENT saying how to be rid of them), and a flush drops them.

The rows are written here as the older Cairn did: new versions through the
write path with its NULL check taken out."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from storage import dml
from storage import keys as keys_mod
from tests.helpers import err, ok, rows, state

NULL_ROWS = [{"k": None, "v": "z"}, {"k": None, "v": "z"}]


async def damaged(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """nk.t: (1, 'a') and two rows of key NULL, all in the write buffer."""
    await ok(client, "CREATE NAMESPACE nk; CREATE TABLE nk.t (k BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO nk.t VALUES (1, 'a')")
    engine = state(client).engine
    st = engine.state("nk", "t")
    data = {"k": pa.array([None, None], pa.int64()), "v": pa.array(["z", "z"]),
            "_deleted": pa.array([False, False])}
    with monkeypatch.context() as m:  # the older Cairn: no check of the keys it wrote
        m.setattr(keys_mod, "refuse_null", lambda *_: None)
        with st.writing():
            dml._append(engine, st, data, 2, None, check_keys=False, overwrite=True)
    assert await rows(client, "SELECT k, v FROM nk.t ORDER BY k NULLS LAST") == [
        {"k": 1, "v": "a"}, *NULL_ROWS]


async def test_update_and_delete_pass_rows_of_a_null_key_by(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await damaged(client, monkeypatch)
    assert (await ok(client, "UPDATE nk.t SET v = 'w'"))[0]["row_count"] == 1
    for text, verb in [("DELETE FROM nk.t WHERE k IS NULL", "deleted"),
                       ("UPDATE nk.t SET v = 'y' WHERE k IS NULL", "updated")]:
        message = await err(client, text, "INVALID_ARGUMENT")
        assert message.startswith(
            "2 row(s) of nk.t have a NULL primary key (k), left by an older Cairn: they are no "
            f"rows of the table and cannot be {verb}. FLUSH TABLE nk.t drops those"), message
    assert await rows(client, "SELECT k, v FROM nk.t ORDER BY k NULLS LAST") == [
        {"k": 1, "v": "w"}, *NULL_ROWS]
    assert (await ok(client, "DELETE FROM nk.t WHERE true"))[0]["row_count"] == 1
    assert await rows(client, "SELECT k, v FROM nk.t") == NULL_ROWS
    # a flush drops them: none reaches a file
    await ok(client, "FLUSH TABLE nk.t")
    assert await rows(client, "SELECT k, v FROM nk.t") == []
    assert await rows(client, "SELECT k, v FROM nk.t WHERE _deleted") == [{"k": 1, "v": "w"}]
    await ok(client, "INSERT INTO nk.t VALUES (1, 'b')")
    assert await rows(client, "SELECT k, v FROM nk.t") == [{"k": 1, "v": "b"}]
