"""A restore's record (`restored_from["at"]`, storage/backup/restored.py) and
a wall clock set back: the record's time must rank after every backup the
server took before that restore, as the backups' own times do."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server import archive_sql
from server.config import Config
from storage.backup import restored, restored_tables
from tests.e2e.test_clock_back import HOUR, step_back
from tests.helpers import ok, rows, sql

from .test_archiving import segment_files, wait_shipped


def set_back(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The wall clock `seconds` behind for every reader of it, the restore
    record's too (a real step moves them all)."""
    step_back(monkeypatch, seconds)

    def now_us() -> str:
        at = datetime.now(UTC) - timedelta(seconds=seconds)
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    monkeypatch.setattr(restored, "now_us", now_us)


async def test_a_rollback_after_the_clock_stepped_back_is_the_history_after_it(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    (x,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    (y,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    with monkeypatch.context() as m:
        set_back(m, HOUR)  # an NTP step; then the mistake is rolled back
        await ok(client, f"RESTORE DATABASE app FROM 'b' WITH (backup_id = '{x['backup_id']}', "
                         "replace = true)")
    # the clock has caught up: since the rollback the namespace holds X's rows
    assert await rows(client, "SELECT id FROM app.t ORDER BY id") == [{"id": 1}]
    time.sleep(0.01)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (r,) = await rows(client, f"RESTORE DATABASE app FROM 'b' AS r WITH (as_of = '{now}')")
    assert r["backup_id"] == x["backup_id"], (r, x, y)
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}]


async def test_a_rollback_after_the_clock_stepped_back_ends_the_archive_window_before_it(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive stopped before the rollback is the history it replaced: a time
    after the rollback is the backup rolled back to, never that window."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    (x,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    await ok(client, "START ARCHIVING DATABASE app TO 'b' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    with monkeypatch.context() as m:
        set_back(m, HOUR)
        await ok(client, f"RESTORE DATABASE app FROM 'b' WITH (backup_id = '{x['backup_id']}', "
                         "replace = true)")
    time.sleep(0.01)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (r,) = await rows(client, f"RESTORE DATABASE app FROM 'b' AS r WITH (as_of = '{now}')")
    assert r["backup_id"] == x["backup_id"], (r, x)
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}]


async def test_a_table_rollback_after_the_clock_stepped_back_is_the_table_after_it(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for RESTORE TABLE (its `restored_tables` entry's `at`): with the
    wall clock set back, the rollback of one table ranked before the newer
    backup, and a time after it gave that table the rows it rolled back over."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1); CREATE NAMESPACE copy")
    (x,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    (y,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    with monkeypatch.context() as m:
        set_back(m, HOUR)
        m.setattr(restored_tables, "now_us", restored.now_us)
        await ok(client, f"RESTORE TABLE app.t FROM 'b' WITH (backup_id = '{x['backup_id']}', "
                         "replace = true)")
    assert await rows(client, "SELECT id FROM app.t ORDER BY id") == [{"id": 1}]
    time.sleep(0.01)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (r,) = await rows(client, f"RESTORE TABLE app.t FROM 'b' AS copy.t WITH (as_of = '{now}')")
    assert r["backup_id"] == x["backup_id"], (r, x, y)
    assert await rows(client, "SELECT id FROM copy.t ORDER BY id") == [{"id": 1}]


async def test_an_archive_stopped_with_the_clock_stepped_back_is_still_after_the_restore(
    client: Any, monkeypatch: pytest.MonkeyPatch, cairn_config: Config
) -> None:
    """STOP ARCHIVING's time (`stopped_at`) decides whether a stopped archive is
    of the history in effect or of one a restore replaced (restore_run.time_plan).
    Taken from the raw wall clock, set back after a rollback, an archive
    started after the rollback stopped "before" it: not this history's, so
    with its segments removed from the target a time in its window was "no
    restorable window" (INVALID_ARGUMENT), not the changes it shipped missing."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    (x,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    await ok(client, "INSERT INTO app.t VALUES (9)")
    await ok(client, f"RESTORE DATABASE app FROM 'b' WITH (backup_id = '{x['backup_id']}', "
                     "replace = true)")
    await ok(client, "START ARCHIVING DATABASE app TO 'b' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    shipped = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # row 2 is in the window
    await wait_shipped(client)
    with monkeypatch.context() as m:
        set_back(m, HOUR)
        # every reader of the clock steps: `utcnow` is what STOP read before
        m.setattr(archive_sql, "utcnow", lambda: restored.now_us()[:23] + "Z", raising=False)
        await ok(client, "STOP ARCHIVING DATABASE app")
    for seg in segment_files(Path(cairn_config.backup_roots[0]), "b"):
        seg.unlink()  # a bucket rule, an operator
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'b' AS r WITH "
                                     f"(as_of = '{shipped}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "archived changes are missing" in body["error"]["message"], body
