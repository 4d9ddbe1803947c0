"""RESTORE DATABASE with `backup_id` and `as_of` naming a backup no archived
changes continue: a BACKUP TABLE, or a member of a backup set, written into
the archive's target. It answered "namespace 'app' has no restorable window"
while SHOW RESTORE POINTS listed a window holding the time; now it says what
the backup is and names the base backups that give the time."""

from __future__ import annotations

from typing import Any

from tests.helpers import err, ok, rows

from .test_archiving import FAST, wait_shipped


async def test_a_backup_that_is_no_base_is_named_for_what_it_is(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY); "
                     "CREATE TABLE app.s (id INT); CREATE NAMESPACE other; "
                     "CREATE TABLE other.t (id INT); INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    [table] = await rows(client, "BACKUP TABLE app.s TO 'arch'")
    members = await rows(client, "BACKUP DATABASE app, other TO 'arch'")
    [member] = [m["backup_id"] for m in members if m["namespace"] == "app"]
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [window] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    base, end = window["base_backup_id"], window["end_time"]

    def restore(backup_id: str, name: str) -> str:
        return (f"RESTORE DATABASE app FROM 'arch' AS {name} WITH "
                f"(backup_id = '{backup_id}', as_of = '{end}')")

    message = await err(client, restore(table["backup_id"], "x1"), "INVALID_ARGUMENT")
    assert "holds only tables s" in message and "RESTORE TABLE" in message, message
    assert base in message and "no restorable window" not in message, message
    message = await err(client, restore(member, "x2"), "INVALID_ARGUMENT")
    assert "member of backup set" in message and "without as_of" in message, message
    assert base in message and "no restorable window" not in message, message
    await ok(client, restore(base, "x3"))
    assert await rows(client, "SELECT id FROM x3.t ORDER BY id") == [{"id": 1}, {"id": 2}]
    names = {r["namespace"] for r in await rows(client, "SHOW NAMESPACES")}
    assert not names & {"x1", "x2"}, names
