"""A BACKUP into an encrypted archive's target with another passphrase is no
base of the archive: its segments are under the archive's key, which that
passphrase does not open (as a plain BACKUP of an encrypted archive is none)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tests.helpers import ok, rows

from .test_archiving import wait_shipped


async def test_a_backup_with_another_passphrase_is_no_base_of_the_archive(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms', "
                     "encryption_passphrase = 'archive-pw')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    (other,) = await rows(client, "BACKUP DATABASE app TO 'arch' WITH "
                                  "(encryption_passphrase = 'other-pw')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await asyncio.sleep(0.01)
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await asyncio.sleep(0.01)
    await ok(client, "INSERT INTO app.t VALUES (3)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    (point,) = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert point["base_backups"] == 1 and point["base_backup_id"] != other["backup_id"], point
    # Before: the other backup was the newest base, and every time after it was
    # refused with the archive's passphrase ("wrong encryption_passphrase for
    # backup <other>"), VERIFY ARCHIVE too, though the archive was whole.
    (report,) = await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch' WITH "
                                   "(encryption_passphrase = 'archive-pw')")
    assert report["is_valid"], report
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{at}', "
                     "encryption_passphrase = 'archive-pw')")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]
    # the other backup restores on its own, with its passphrase
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS o WITH (backup_id = "
                     f"'{other['backup_id']}', encryption_passphrase = 'other-pw')")
    assert await rows(client, "SELECT id FROM o.t ORDER BY id") == [{"id": 1}]
