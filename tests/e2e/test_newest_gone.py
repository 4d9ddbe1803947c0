"""A RESTORE without backup_id whose newest backup this server made is no
longer in the target: it restored the older one in its place and said
completed, so whoever could delete a manifest chose which rows came back
(the thirteenth round's Left). Now it is refused, naming both, until the
operator names the older one or a SHOW BACKUPS IN the target forgets the
missing one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import err, ok, rows


async def test_a_missing_newest_backup_is_not_replaced_by_an_older_one(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    (old,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    (taken,) = await rows(client, "SELECT snapshot_at FROM system.backups WHERE backup_id = "
                                  f"'{old['backup_id']}'")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    (new,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    await ok(client, "INSERT INTO app.t VALUES (3)")
    manifests = tmp_path / "backups" / "nightly" / "manifests"
    (manifests / f"{new['backup_id']}.json").unlink()  # by someone with the target's files

    message = await err(client, "RESTORE DATABASE app FROM 'nightly' WITH (replace = true)",
                        "ALREADY_EXISTS")
    assert new["backup_id"] in message and old["backup_id"] in message, message
    assert "is no longer there" in message
    assert await rows(client, "SELECT k FROM app.t ORDER BY k") == [{"k": 1}, {"k": 2}, {"k": 3}]
    # AS another namespace, and as_of after both, are refused alike; as_of
    # between them takes the older one, which is then the newest asked for.
    await err(client, "RESTORE DATABASE app FROM 'nightly' AS copy", "ALREADY_EXISTS")
    await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                     f"(as_of = '{taken['snapshot_at']}')")
    assert await rows(client, "SELECT k FROM copy.t") == [{"k": 1}]
    # Named, the older one is restored.
    await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS named WITH "
                     f"(backup_id = '{old['backup_id']}')")
    assert await rows(client, "SELECT k FROM named.t") == [{"k": 1}]
    # SHOW BACKUPS IN the target forgets the missing one: the older is the newest.
    target = message.split("run SHOW BACKUPS IN '")[1].split("'")[0]  # as the message says
    listed = await rows(client, f"SHOW BACKUPS IN '{target}'")
    assert [b["backup_id"] for b in listed if b["namespace"] == "app"] == [old["backup_id"]]
    await ok(client, "RESTORE DATABASE app FROM 'nightly' AS after")
    assert await rows(client, "SELECT k FROM after.t") == [{"k": 1}]


async def test_a_missing_newest_set_or_table_backup_is_not_replaced_either(
        client: Any, tmp_path: Path) -> None:
    """RESTORE ALL (and RESTORE DATABASE of a set's member), and RESTORE
    TABLE, took the older set or backup in silence (a regress pass)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (k INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    (old_set,) = await rows(client, "BACKUP ALL TO 'sets'")  # one member: bk-….app
    (old,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    (old_t,) = await rows(client, "BACKUP TABLE app.t TO 'tb'")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    (new_set,) = await rows(client, "BACKUP ALL TO 'sets'")
    (new,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    (new_t,) = await rows(client, "BACKUP TABLE app.t TO 'tb'")
    root = tmp_path / "backups"
    for path in (root / "sets" / "manifests").iterdir():
        if path.name.startswith(new_set["backup_id"]):
            path.unlink()
    (root / "nightly" / "manifests" / f"{new['backup_id']}.json").unlink()
    (root / "tb" / "manifests" / f"{new_t['backup_id']}.json").unlink()
    await ok(client, "INSERT INTO app.t VALUES (3)")
    for text, older in [
            ("RESTORE ALL FROM 'sets' WITH (replace = true)", old_set["backup_id"][:-4]),
            ("RESTORE DATABASE app FROM 'sets' AS copy", old_set["backup_id"]),
            ("RESTORE TABLE app.t FROM 'nightly' WITH (replace = true)", old["backup_id"]),
            ("RESTORE TABLE app.t FROM 'tb' WITH (replace = true)", old_t["backup_id"])]:
        message = await err(client, text, "ALREADY_EXISTS")
        assert "is no longer there" in message and older in message, (text, message)
    assert await rows(client, "SELECT k FROM app.t ORDER BY k") == [{"k": 1}, {"k": 2}, {"k": 3}]
    await ok(client, "RESTORE TABLE app.t FROM 'tb' AS app.t1 WITH "
                     f"(backup_id = '{old_t['backup_id']}')")
    assert await rows(client, "SELECT k FROM app.t1") == [{"k": 1}]


async def test_the_newest_gone_after_attach_is_still_not_replaced(
        client: Any, tmp_path: Path) -> None:
    """A backup whose record was forgotten (its manifest briefly away, SHOW
    BACKUPS IN) and attached again, then removed: the older one was restored
    in silence, where the same removal before was 409 (the eighteenth round's
    `agree` finding 2): only a record a BACKUP here wrote counted."""
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (k INT PRIMARY KEY); "
                     "INSERT INTO a.t VALUES (1)")
    (a1,) = [r["backup_id"] for r in await rows(client, "BACKUP DATABASE a TO 'tg'")]
    await ok(client, "INSERT INTO a.t VALUES (2)")
    (a2,) = [r["backup_id"] for r in await rows(client, "BACKUP DATABASE a TO 'tg'")]
    path = tmp_path / "backups" / "tg" / "manifests" / f"{a2}.json"
    path.rename(path.with_suffix(".away"))
    await ok(client, "SHOW BACKUPS IN 'tg'")  # forgets a2's record
    assert await rows(client, f"SELECT * FROM system.backups WHERE backup_id = '{a2}'") == []
    path.with_suffix(".away").rename(path)
    attached = {r["backup_id"]: r["status"] for r in await rows(client, "ATTACH BACKUPS FROM 'tg'")}
    assert attached[a2] == "attached", attached
    path.unlink()
    message = await err(client, "RESTORE DATABASE a FROM 'tg' WITH (replace = true)",
                        "ALREADY_EXISTS")
    assert a2 in message and a1 in message and "is no longer there" in message, message
    assert await rows(client, "SELECT k FROM a.t ORDER BY k") == [{"k": 1}, {"k": 2}]
