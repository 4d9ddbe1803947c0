"""A new archive (START ARCHIVING after STOP, the server restarted with its
clock set back) continues after the target's existing windows of the
namespace: restore points stay in the order the changes were made."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.archive.test_archiving import archive_two_rows, wait_shipped
from tests.e2e.test_clock_back import HOUR, step_back
from tests.helpers import ok, rows


async def test_a_new_archive_after_the_clock_was_set_back_comes_after_the_old(
    aiohttp_client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await aiohttp_client(create_app(cairn_config))
    await archive_two_rows(client)
    (old,) = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    await client.close()
    step_back(monkeypatch, HOUR)
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "DELETE FROM app.t WHERE id = 1; INSERT INTO app.t VALUES (3)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    (new,) = [p for p in points if p["archive_id"] != old["archive_id"]]
    # Before, the new window was stamped an hour before the old one.
    assert new["start_time"] > old["end_time"], points
    newest = max(p["end_time"] for p in points)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{newest}')")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 2}, {"id": 3}]
    # RESTORE without as_of: the newest backup, the new archive's base
    (plain,) = await rows(client, "RESTORE DATABASE app FROM 'arch' AS plain")
    assert plain["backup_id"] == new["base_backup_id"], (plain, points)
    assert await rows(client, "SELECT id FROM plain.t ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_only_this_servers_own_windows_and_backups_floor_its_times(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    """Another server's window of a namespace of the same name (whose clock ran
    ten years ahead), or a backup ATTACH BACKUPS recorded (any time its writer
    chose), floored this server's new archives and backups into that future:
    as_of for now NOT_FOUND, every later backup stamped in 2036."""
    from catalog import Backup
    from server.repos import repository
    from storage import clock_floor
    from tests.helpers import state

    client = await aiohttp_client(create_app(cairn_config))
    await archive_two_rows(client)
    cairn = state(client)
    repo = repository(cairn, "arch")
    mine = clock_floor.windows_end_us(repo, "app", cairn.catalog.server_id())
    assert mine > 0
    assert clock_floor.windows_end_us(repo, "app", "sv-" + "0" * 20) == 0  # not its own
    own = clock_floor.recorded_us(cairn.catalog, ["app"])["app"]
    assert own > 0
    cairn.catalog.put(Backup(backup_id="bk-attached", namespace="app", target="t",
                             created_at="2036-01-01T00:00:00.000Z",
                             snapshot_at="2036-01-01T00:00:00.000Z"))  # job_id None: attached
    assert clock_floor.recorded_us(cairn.catalog, ["app"])["app"] == own
