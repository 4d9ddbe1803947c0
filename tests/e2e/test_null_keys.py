"""Rows whose primary key is NULL, left by an older Cairn's
`UPDATE ns.t AS x RIGHT JOIN range(2) r(i) ON false SET ...` (refused now, and
the write path refuses new versions with a NULL key: keys.refuse_null).

On a table holding some, every whole-table UPDATE and DELETE failed ("Column
'k' is part of the primary key and would be NULL in 2 row(s)"), and BACKUP
said `completed` for a backup VERIFY called invalid and RESTORE refused.
Now UPDATE and DELETE pass them by (not counted; a statement that found only
them is INVALID_ARGUMENT saying how to be rid of them), a flush drops them,
and BACKUP refuses a table holding them, naming it, leaving nothing behind.

The rows are written here as the older Cairn did: new versions through the
write path with its NULL check taken out."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from storage import dml, flush
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


async def test_backup_refuses_a_table_of_buffered_null_keys_until_a_flush(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await damaged(client, monkeypatch)
    message = await err(client, "BACKUP DATABASE nk TO 'b6'", "INVALID_ARGUMENT")
    assert message == (
        "cannot back up namespace 'nk': table 't' holds 2 row(s) whose primary key (k) is "
        "NULL, left by an older Cairn, which no restore takes; FLUSH TABLE nk.t drops them "
        "from the write buffer, then BACKUP again (docs/sql.md). Nothing was written")
    await err(client, "SHOW BACKUPS IN 'b6'", "NOT_FOUND")  # nothing left behind
    assert await rows(client, "SELECT status FROM system.jobs WHERE job_type = 'backup'") == [
        {"status": "failed"}]
    await ok(client, "FLUSH TABLE nk.t")
    done = (await rows(client, "BACKUP DATABASE nk TO 'b6'"))[0]
    assert done["status"] == "completed"
    checked = await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'b6'")
    assert checked[0]["is_valid"] is True, checked
    await ok(client, "RESTORE DATABASE nk FROM 'b6' AS nk2")
    assert await rows(client, "SELECT k, v FROM nk2.t") == [{"k": 1, "v": "a"}]


async def test_backup_refuses_a_table_whose_files_hold_null_keys(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await damaged(client, monkeypatch)
    with monkeypatch.context() as m:  # the older Cairn's flush kept them
        m.setattr(flush, "without_null_keys", lambda _pk, rows: (rows, 0))
        await ok(client, "FLUSH TABLE nk.t")
    assert await rows(client, "SELECT count(*) AS n FROM nk.t") == [{"n": 3}]
    message = await err(client, "BACKUP DATABASE nk TO 'b7'", "INVALID_ARGUMENT")
    assert message == (
        "cannot back up namespace 'nk': table 't' holds 2 row(s) whose primary key (k) is "
        "NULL, left by an older Cairn, which no restore takes; they are in its files: copy the "
        "other rows into a new table (CREATE TABLE, then INSERT INTO it SELECT its columns FROM "
        "nk.t WHERE k IS NOT NULL) and drop this one (docs/sql.md). Nothing was written")
    await err(client, "SHOW BACKUPS IN 'b7'", "NOT_FOUND")
    # the way out the message gives
    await ok(client, "CREATE TABLE nk.u (k BIGINT PRIMARY KEY, v TEXT); "
                     "INSERT INTO nk.u SELECT k, v FROM nk.t WHERE k IS NOT NULL; DROP TABLE nk.t")
    done = (await rows(client, "BACKUP DATABASE nk TO 'b7'"))[0]
    checked = await rows(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'b7'")
    assert checked[0]["is_valid"] is True, checked
