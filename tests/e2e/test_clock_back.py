"""A wall clock that steps back (NTP, or set back across a restart) must not
change which backup is "newest": for one server its backups of a namespace
rank in the order they were taken. The clock Cairn reads for snapshot times
(storage/archive/changes.py `now_us`) is stepped back in-process."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from catalog import Backup
from server import archive_sql, archiving
from server.app import create_app
from server.config import Config
from storage import snapshot
from storage.archive import changes
from storage.archive.store import iso
from tests.helpers import ok, reseal, rows, state

HOUR = 3600


def step_back(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """From now on the wall clock Cairn reads is `seconds` behind: commit
    times, snapshot cuts, archiving's floors, and a set's stamp (before the
    fix `utcnow` in storage/snapshot.py)."""
    behind = int(seconds * 1e6)

    def now_us() -> int:
        return time.time_ns() // 1000 - behind

    for module in (changes, archive_sql, archiving):  # those that read it
        monkeypatch.setattr(module, "now_us", now_us)

    def utcnow() -> str:
        at = changes.now_us()
        return iso(at - at % 1000)

    monkeypatch.setattr(snapshot, "utcnow", utcnow, raising=False)


async def snapshot_times(client: Any, target: str) -> dict[str, str]:
    return {r["backup_id"]: r["snapshot_at"]
            for r in await rows(client, f"SHOW BACKUPS IN '{target}'")}


async def test_a_backup_after_the_clock_stepped_back_is_the_newest(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    (first,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    step_back(monkeypatch, HOUR)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    (second,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    times = await snapshot_times(client, "b")
    # Before, both cut at the first's ms: a tie that created_at (the clock) broke.
    assert times[second["backup_id"]] > times[first["backup_id"]], times
    (restored,) = await rows(client, "RESTORE DATABASE app FROM 'b' AS copy")
    assert restored["backup_id"] == second["backup_id"]
    assert await rows(client, "SELECT k FROM copy.t ORDER BY k") == [{"k": 1}, {"k": 2}]
    await ok(client, "BACKUP DATABASE app TO 'b' WITH (keep_last = 2)")
    assert second["backup_id"] in await snapshot_times(client, "b")


async def test_a_backup_after_a_restart_with_the_clock_set_back_is_the_newest(
    aiohttp_client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    (first,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    await client.close()
    step_back(monkeypatch, HOUR)  # set back while the server was down
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "INSERT INTO app.t VALUES (2)")
    (second,) = await rows(client, "BACKUP DATABASE app TO 'b'")
    times = await snapshot_times(client, "b")
    # Before, the second was stamped an hour before the first: RESTORE took the first.
    assert times[second["backup_id"]] > times[first["backup_id"]], times
    await ok(client, "RESTORE DATABASE app FROM 'b' AS copy")
    assert await rows(client, "SELECT k FROM copy.t ORDER BY k") == [{"k": 1}, {"k": 2}]


async def test_a_backup_set_after_the_clock_stepped_back_is_the_newest(
    client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ok(client, "CREATE NAMESPACE a; CREATE NAMESPACE b; "
                     "CREATE TABLE a.t (k INT PRIMARY KEY); CREATE TABLE b.t (k INT PRIMARY KEY); "
                     "INSERT INTO a.t VALUES (1); INSERT INTO b.t VALUES (1)")
    plain = "WITH (compression = 'none')"
    await ok(client, f"BACKUP DATABASE a, b TO 'sets' {plain}")
    step_back(monkeypatch, 5)
    await ok(client, "INSERT INTO a.t VALUES (2)")
    newer = await rows(client, f"BACKUP DATABASE a, b TO 'sets' {plain}")
    # created_at is the wall clock of the job process: as the stepped clock wrote it
    manifests = Path(cairn_config.backup.roots[0]) / "sets" / "manifests"
    catalog = state(client).catalog
    for member in newer:
        made = iso(changes.now_us() // 1000 * 1000)
        reseal(manifests / f"{member['backup_id']}.json",
               lambda doc, made=made: doc.update(created_at=made))
        # and its record, written from the same manifest (else it contradicts it)
        record = catalog.get(Backup, member["backup_id"])
        catalog.put(dataclasses.replace(record, created_at=made))
    # Before, the set was stamped by the raw clock and sets ranked by
    # created_at: the older set was "newest", row 2 overwritten away.
    await ok(client, "RESTORE ALL FROM 'sets' WITH (replace = true)")
    assert await rows(client, "SELECT k FROM a.t ORDER BY k") == [{"k": 1}, {"k": 2}]
    await ok(client, "RESTORE DATABASE a FROM 'sets' AS a2")
    assert await rows(client, "SELECT k FROM a2.t ORDER BY k") == [{"k": 1}, {"k": 2}]
    # a single backup after the set is later still
    step_back(monkeypatch, 10)
    (one,) = await rows(client, "BACKUP DATABASE a TO 'sets'")
    times = await snapshot_times(client, "sets")
    assert max(times.values()) == times[one["backup_id"]], times
    assert list(times.values()).count(times[one["backup_id"]]) == 1, times
