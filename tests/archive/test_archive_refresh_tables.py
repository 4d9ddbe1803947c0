"""RESTORE … as_of after a RESTORE TABLE: never rows the table did not hold then
(left by the twenty-first round). The namespace's record keeps its RESTORE
TABLEs (`restored_tables`: the table, the backup, when): a time after one is
judged for that table by it: this server's own backup taken after it, else for
RESTORE TABLE exactly the backup it restored, and for the whole namespace
NOT_FOUND (no backup holds its state then) (storage/backup/restored_tables.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from catalog import Namespace, Record
from server.config import Config
from storage.backup.restored_tables import KEPT, entries, in_effect, recorded
from storage.backup.selection import parse_time
from tests.helpers import err, ok, rows, sql, state

from .test_archive_lineage import POINTS, content, two_servers
from .test_archive_refresh import backup, now, restored_id
from .test_archiving import FAST, wait_shipped


async def ids(client: Any, table: str) -> set[int]:
    return {r["id"] for r in await rows(client, f"SELECT id FROM {table}")}


async def test_a_time_after_a_table_rollback_is_never_the_newer_backup(client: Any) -> None:
    """Z1, then Z2, then RESTORE TABLE app.t from Z1 (one table rolled back): a
    time after it took Z2 for the table and the namespace, rows t no longer
    held. Now the table is Z1's, the namespace NOT_FOUND saying why, another
    table still Z2's; a backup taken after the rollback is the state after it."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "CREATE TABLE app.u (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1, 'a'); "
                     "INSERT INTO app.u VALUES (1); CREATE NAMESPACE copy")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 'a'); INSERT INTO app.u VALUES (2)")
    z2, z2_at = await backup(client)
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    t = await now(client)

    assert await restored_id(
        client, f"RESTORE TABLE app.t FROM 'arch' AS copy.t WITH (as_of = '{t}')") == z1
    assert await ids(client, "copy.t") == {1}
    message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS whole "
                                f"WITH (as_of = '{t}')", "NOT_FOUND")
    assert f"table 'app.t' was restored from table 'app.t' of backup '{z1}'" in message, message
    assert "no backup holds the namespace's state then" in message, message
    assert await restored_id(
        client, f"RESTORE TABLE app.u FROM 'arch' AS copy.u WITH (as_of = '{t}')") == z2
    assert await ids(client, "copy.u") == {1, 2}
    # before the rollback: the backup then
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{z2_at}')") == z2
    await ok(client, "INSERT INTO app.u VALUES (3)")
    z3, z3_at = await backup(client)
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS later WITH (as_of = '{z3_at}')") == z3
    assert await content(client, "later") == {(1, "a")}


async def test_a_table_pulled_from_the_servers_newer_backup_is_that_backup(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` was refreshed from A's X; A wrote and took Y; B pulled table t
    from Y (a plain RESTORE TABLE takes the lineage's newest). A time after
    that took X: t without A's row B held then. Now Y for the table, and
    NOT_FOUND for the namespace (X lacks the row, Y is A's database)."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    y, _ = await backup(a)
    assert await restored_id(b, "RESTORE TABLE app.t FROM 'arch' WITH (replace = true)") == y
    held = await content(b, "app")
    assert held == {(1, "a"), (2, "a")}
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    await backup(a)
    t = await now(b)
    assert await restored_id(
        b, f"RESTORE TABLE app.t FROM 'arch' AS app.t2 WITH (as_of = '{t}')") == y
    assert {(r["id"], r["who"]) for r in await rows(b, "SELECT id, who FROM app.t2")} == held
    message = await err(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')",
                        "NOT_FOUND")
    assert f"of backup '{y}'" in message, message


async def test_a_table_of_another_servers_backup_is_never_this_servers_older_rows(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's own `app` (Z); B restored table t from A's backup of its `app` by id:
    a time after it took Z, B's rows the restore replaced. Now A's backup for
    the table (whoever's, as a refresh's), NOT_FOUND for the namespace."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    z, _ = await backup(b)
    xa, _ = await backup(a)
    await ok(b, f"RESTORE TABLE app.t FROM 'arch' WITH (replace = true, backup_id = '{xa}')")
    t = await now(b)
    assert await restored_id(
        b, f"RESTORE TABLE app.t FROM 'arch' AS app.t2 WITH (as_of = '{t}')") == xa
    assert {(r["id"], r["who"]) for r in await rows(b, "SELECT id, who FROM app.t2")} \
        == {(1, "a")}
    await err(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')", "NOT_FOUND")
    assert z != xa


async def test_a_table_restored_under_another_name_is_not_found_naming_it(
        client: Any) -> None:
    """RESTORE TABLE app.x … AS app.t: a time after it took Z2's app.t (rows of
    another table than t held). NOT_FOUND naming the table it holds."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "CREATE TABLE app.x (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 't'); INSERT INTO app.x VALUES (5, 'x')")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 't')")
    await backup(client)
    await ok(client, f"RESTORE TABLE app.x FROM 'arch' AS app.t WITH (backup_id = '{z1}', "
                     "replace = true)")
    t = await now(client)
    message = await err(client, f"RESTORE TABLE app.t FROM 'arch' AS app.t2 WITH "
                                f"(as_of = '{t}')", "NOT_FOUND")
    assert f"RESTORE TABLE app.x FROM '…' AS app.t WITH (backup_id = '{z1}')" in message, message


async def test_a_namespace_restore_of_the_same_database_keeps_its_table_restores(
        client: Any) -> None:
    """RESTORE TABLE app.t from Z1, then RESTORE DATABASE app from Z2 (the same
    database): a time between the two took Z2 (the record forgot the table's
    rollback). Now Z1 for the table then; after the second, Z2."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    z2, _ = await backup(client)
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    between = await now(client)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' WITH (backup_id = '{z2}', replace = true)")
    after = await now(client)
    assert await restored_id(
        client, f"RESTORE TABLE app.t FROM 'arch' AS app.t1 WITH (as_of = '{between}')") == z1
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS q WITH (as_of = '{between}')",
              "NOT_FOUND")
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{after}')") == z2


async def test_restore_all_to_a_time_after_a_table_rollback_is_not_found(client: Any) -> None:
    """BACKUP ALL S1, S2; RESTORE TABLE app.t from S1's member: RESTORE ALL to a
    time after it took S2 (rows t no longer held), and said completed."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    [s1] = await rows(client, "BACKUP ALL TO 'arch'")
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    await rows(client, "BACKUP ALL TO 'arch'")
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{s1['backup_id']}', "
                     "replace = true)")
    t = await now(client)
    await err(client, f"RESTORE ALL FROM 'arch' WITH (as_of = '{t}', replace = true)",
              "NOT_FOUND")
    assert await content(client, "app") == {(1, "a")}
    [s3] = await rows(client, "BACKUP ALL TO 'arch'")
    [got] = await rows(client, f"RESTORE ALL FROM 'arch' WITH (as_of = '{await now(client)}', "
                               "replace = true)")
    assert str(got["backup_id"]).split(".")[0] == str(s3["backup_id"]).split(".")[0], (got, s3)


async def test_table_restores_past_the_kept_ones_and_hostile_records(client: Any) -> None:
    """The record keeps the last KEPT (one entry stands for those forgotten: a
    time after it is of every table); a record without the field, or with a
    value that does not read, loads and restores."""
    class M:  # what `recorded` reads of a manifest
        backup_id, namespace = "bk-1", "app"
        namespace_record = None
    listed: list[dict[str, str]] | None = None
    for i in range(KEPT + 3):
        listed = recorded(listed, f"t{i}", M, f"t{i}")
    assert listed is not None and len(listed) == KEPT and "table" not in listed[0]
    assert in_effect(listed, "2999-01-01", None, "t0") == listed[0]  # forgotten: any table's
    assert in_effect(listed, "2999-01-01", None, f"t{KEPT + 2}")["table"] == f"t{KEPT + 2}"
    assert in_effect(listed, "2000-01-01", None, None) is None
    assert parse_time(listed[0]["at"]) <= parse_time(listed[1]["at"])
    assert entries("junk") == [] and entries([{"at": 5}, {"at": "x"}, "y", None]) == []
    old = Namespace.loads(b'{"name":"app","created_at":"2026-01-01T00:00:00.000Z"}')
    assert old.restored_tables is None and isinstance(old, Record)

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    catalog = state(client).catalog
    for hostile in ("junk", [{"at": 7, "table": "t"}], [None], {"at": "x"}):
        rec = catalog.get(Namespace, "app")
        assert rec is not None
        catalog.put(Namespace("app", created_at=rec.created_at, options=rec.options,
                              restored_tables=hostile))  # type: ignore[arg-type]
        assert await restored_id(client, f"RESTORE DATABASE app FROM 'arch' AS c WITH "
                                         f"(as_of = '{await now(client)}', replace = true)") == z1
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    rec = catalog.get(Namespace, "app")
    assert rec is not None and [e["backup"] for e in rec.restored_tables or []] == [z1]


async def test_a_backup_after_a_table_restore_is_cut_after_it(client: Any) -> None:
    """The wall clock stepped back after a RESTORE TABLE (its `at` an hour ahead
    of the clock now): the next backup was cut before it, so a time after that
    backup was judged as before the restore. It is cut after `at`."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    catalog = state(client).catalog
    rec = catalog.get(Namespace, "app")
    assert rec is not None and rec.restored_tables
    ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    catalog.put(Namespace("app", created_at=rec.created_at, options=rec.options,
                          restored_tables=[{**rec.restored_tables[0], "at": ahead}]))
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    z2, taken = await backup(client)
    assert parse_time(taken) > parse_time(ahead), (taken, ahead)
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS c WITH (as_of = '{taken}')") == z2


async def test_an_archive_stopped_before_a_table_restore_is_the_history_before_it(
        client: Any) -> None:
    """An archive of `app` stopped, then a RESTORE TABLE: a time in its window
    still replays it (SHOW RESTORE POINTS lists it); a time after the table's
    restore is judged by that restore (NOT_FOUND naming it), never the window."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    then = (await wait_shipped(client, timeout=60))["archived_until"]
    await ok(client, "STOP ARCHIVING DATABASE app")
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    assert await rows(client, POINTS)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{then}')")
    assert await content(client, "old") == {(1, "a"), (2, "a")}
    message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS c WITH "
                                f"(as_of = '{await now(client)}')", "NOT_FOUND")
    assert f"of backup '{z1}'" in message, message


async def test_a_refresh_from_another_database_forgets_the_table_restores_as_lost(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's own `app`: Z1, Z2, RESTORE TABLE t from Z1; then B refreshed from A's
    X (another database). A time between took Z2 (t's rows the rollback
    undid): the record forgot the table's restore. Now its time is `lost`:
    only B's own backups after it, else NOT_FOUND."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    z1, _ = await backup(b)
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    await backup(b)
    await ok(b, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    between = await now(b)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    status, body = await sql(b, f"RESTORE DATABASE app FROM 'arch' AS q WITH "
                                f"(as_of = '{between}')")
    assert body.get("status") == "error" and body["error"]["code"] == "NOT_FOUND", body


async def test_a_restore_with_the_clock_stepped_back_is_after_the_backups_before_it(
        client: Any, monkeypatch: Any) -> None:
    """Z1, Z2; the wall clock stepped back an hour; RESTORE TABLE app.t from Z1
    (a rollback): its `at` was the raw clock, before Z2's cut, so a time after
    both took Z2 ("taken after the restore"), rows t no longer held; a RESTORE
    DATABASE rollback alike. A restore is stamped after every cut of the
    namespace (storage/clock_floor.py restore_at)."""
    import storage.backup.restored as restored
    import storage.backup.restored_tables as restored_tables

    def back() -> str:
        return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    z2, _ = await backup(client)
    with monkeypatch.context() as clock:
        clock.setattr(restored_tables, "now_us", back)
        clock.setattr(restored, "now_us", back)
        await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', "
                         "replace = true)")
    t = await now(client)
    assert await restored_id(
        client, f"RESTORE TABLE app.t FROM 'arch' AS app.t9 WITH (as_of = '{t}')") == z1
    assert await ids(client, "app.t9") == {1}
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS c WITH (as_of = '{t}')", "NOT_FOUND")
    await ok(client, "DROP TABLE app.t9")
    with monkeypatch.context() as clock:
        clock.setattr(restored_tables, "now_us", back)
        clock.setattr(restored, "now_us", back)
        await ok(client, f"RESTORE DATABASE app FROM 'arch' WITH (backup_id = '{z1}', "
                         "replace = true)")
    t = await now(client)
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS d WITH (as_of = '{t}')") == z1
    assert await content(client, "d") == {(1, "a")}


async def test_a_time_after_a_forgotten_table_rollback_is_not_the_backup_rolled_back(
        client: Any) -> None:
    """RESTORE TABLE app.t from Z1 (a rollback), then 16 more RESTORE TABLEs:
    the record forgot the rollback (one entry for those, at the newest's
    time), and a time between the rollback and that entry took Z2, rows t no
    longer held, for the namespace and the table. Now NOT_FOUND; a time
    before the first restore forgotten is judged as before."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    z2, z2_at = await backup(client)
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    mid = await now(client)

    class M:  # 16 later RESTORE TABLEs of other tables, as install_table records them
        backup_id, namespace = z1, "app"
        namespace_record = None
    catalog = state(client).catalog
    rec = catalog.get(Namespace, "app")
    assert rec is not None and rec.restored_tables
    listed = rec.restored_tables
    for i in range(KEPT):
        listed = recorded(listed, f"x{i}", M, "t")
    assert "table" not in listed[0]
    catalog.put(Namespace("app", created_at=rec.created_at, options=rec.options,
                          restored_tables=listed))
    message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS c WITH (as_of = '{mid}')",
                        "NOT_FOUND")
    assert "restores its record no longer keeps" in message, message
    await err(client, f"RESTORE TABLE app.t FROM 'arch' AS app.y WITH (as_of = '{mid}')",
              "NOT_FOUND")
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS d WITH (as_of = '{z2_at}')") == z2


async def test_a_copy_restored_beside_and_dropped_no_longer_judges_the_namespace(
        client: Any) -> None:
    """RESTORE TABLE app.t … AS app.t_check (an old version to look at), then
    DROP TABLE app.t_check: every RESTORE DATABASE as_of a time after the DROP
    was NOT_FOUND until the next backup, Z2 holding the namespace as it then
    was. Now Z2; a time while the copy was there is still NOT_FOUND, and a
    table rolled back (it replaced rows) and dropped still judges it."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "CREATE TABLE app.u (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    z2, _ = await backup(client)
    await ok(client, f"RESTORE TABLE app.t FROM 'arch' AS app.t_check WITH (backup_id = '{z1}')")
    there = await now(client)
    await ok(client, "DROP TABLE app.t_check")
    gone = await now(client)
    message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS a1 WITH "
                                f"(as_of = '{there}')", "NOT_FOUND")
    assert "one taken before lacks that table (the restore made it" in message, message
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS a2 WITH (as_of = '{gone}')") == z2
    assert await content(client, "a2") == {(1, "a"), (2, "a")}
    await ok(client, f"RESTORE TABLE app.u FROM 'arch' WITH (backup_id = '{z1}', replace = true)")
    await ok(client, "DROP TABLE app.u")
    await err(client, f"RESTORE DATABASE app FROM 'arch' AS a3 WITH "
                      f"(as_of = '{await now(client)}')", "NOT_FOUND")
