"""An archive that needs a new base while its namespace is dropped (DROP
NAMESPACE, archiving goes on following the name; then the window's base
dropped, a segment lost or the target emptied).

Before, each cycle started a `backup` job that failed "Namespace 'app' does
not exist", again at every retry (backoff up to 30 s) for as long as the name
stayed dropped: a new `failed` row in system.jobs each time, without end; and
once the namespace was created again its base waited for that backoff, so
its first seconds were in no window. Now no job is started while the
namespace does not exist: SHOW ARCHIVES says why it waits, and the new base
is taken at the first check after CREATE NAMESPACE (once a second)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import ok, rows

from .test_archive_guards import all_ids, backups, wait_for
from .test_archiving import FAST, wait_shipped


async def archive_row(client: Any) -> dict[str, Any]:
    return (await rows(client, "SHOW ARCHIVES"))[0]


async def backup_jobs(client: Any) -> list[dict[str, Any]]:
    return await rows(client, "SELECT job_id, status, error_message FROM system.jobs "
                              "WHERE job_type = 'backup' ORDER BY created_at")


async def test_a_base_needed_while_the_namespace_is_dropped_waits_for_it(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await wait_shipped(client)
    [base] = await backups(client)
    await ok(client, "DROP NAMESPACE app CASCADE")
    await ok(client, f"DROP BACKUP '{base['backup_id']}' IN 'arch'")

    async def waiting() -> dict[str, Any] | None:
        row = await archive_row(client)
        return row if "does not exist" in (row["last_error"] or "") else None

    shown = await wait_for(waiting, 60)
    assert shown["status"] == "failed", shown
    assert "created again" in shown["last_error"], shown
    await asyncio.sleep(1.0)  # cycles go on (100 ms) while it waits
    # no base job was started for a namespace that is not there: no failed rows
    assert [j for j in await backup_jobs(client) if j["status"] != "completed"] == []
    assert (await archive_row(client))["status"] == "failed"

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (2)")

    async def new_base() -> list[dict[str, Any]]:
        return [b for b in await backups(client) if b["backup_id"] != base["backup_id"]]

    [second] = await wait_for(new_base, 60)
    assert second["label"] == "archive base"
    await ok(client, "INSERT INTO app.t VALUES (3)")
    shown = await wait_shipped(client, timeout=60)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    assert [j["status"] for j in await backup_jobs(client)] == ["completed", "completed"]
    await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    newest = max(points, key=lambda p: p["end_time"])
    assert newest["base_backup_id"] == second["backup_id"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{newest['end_time']}')")
    assert await all_ids(client, "r") == {2, 3}


async def test_stop_archiving_while_it_waits_for_the_namespace(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    [base] = await backups(client)
    await ok(client, "DROP NAMESPACE app CASCADE")
    await ok(client, f"DROP BACKUP '{base['backup_id']}' IN 'arch'")

    async def waiting() -> bool:
        return "does not exist" in ((await archive_row(client))["last_error"] or "")

    await wait_for(waiting, 60)
    stopped = (await rows(client, "STOP ARCHIVING DATABASE app"))[0]
    assert stopped["status"] == "stopped", stopped
    await ok(client, "CREATE NAMESPACE app")
    await asyncio.sleep(0.5)
    assert (await archive_row(client))["status"] == "stopped"
    assert [j["status"] for j in await backup_jobs(client)] == ["completed"]


async def created_at(client: Any, ns: str) -> str:
    [row] = await rows(client, f"SELECT created_at FROM system.namespaces WHERE namespace = '{ns}'")
    return str(row["created_at"])


async def test_a_restore_to_a_time_after_the_name_was_created_again_is_the_new_namespace(
        client: Any) -> None:
    """DROP NAMESPACE and CREATE NAMESPACE while archived: a restore to a time
    after it is the namespace created again, with its created_at. Before, the
    CREATE was not archived and the restore took the base's, the dropped
    database's: with `replace`, a keep_last of the restored namespace then took
    the dropped database's backups for its own and dropped them (the backups
    one needs after a mistaken DROP)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    old = (await rows(client, "BACKUP DATABASE app TO 'bk'"))[0]["backup_id"]
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "DROP NAMESPACE app CASCADE")
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (2)")
    new = await created_at(client, "app")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    [window] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    end = window["end_time"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')")
    assert await created_at(client, "r") == new
    assert await all_ids(client, "r") == {2}
    await ok(client, f"RESTORE DATABASE app FROM 'arch' WITH (as_of = '{end}', replace = true)")
    assert await created_at(client, "app") == new
    await ok(client, "BACKUP DATABASE app TO 'bk' WITH (keep_last = 1)")
    left = {b["backup_id"] for b in await rows(client, "SHOW BACKUPS IN 'bk'")}
    assert old in left, left  # the dropped database's backup is not the new one's to drop
