"""A RESTORE to a time on a namespace a RESTORE made (a drill or refresh copy
of another server's, or a rollback to an older backup of its own), with no
backup of its own since: the backup it was restored from, never a newer one of
the server restored from (rows this server never had) nor an older one (rows
it had, lost). Servers share one target and take plain backups only."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from catalog import Namespace
from server.app import create_app
from server.config import Config
from storage.backup.selection import parse_time
from tests.helpers import err, ok, rows, state

from .test_archive_lineage import POINTS, content, two_servers
from .test_archiving import FAST, wait_shipped

NOW = "SELECT strftime(now()::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%fZ') AS t"


async def now(client: Any) -> str:
    [got] = await rows(client, NOW)
    return str(got["t"])


async def backup(client: Any) -> tuple[str, str]:
    """BACKUP DATABASE app TO 'arch': its id and snapshot_at."""
    [row] = await rows(client, "BACKUP DATABASE app TO 'arch'")
    [rec] = await rows(client, "SELECT snapshot_at FROM system.backups "
                               f"WHERE backup_id = '{row['backup_id']}'")
    return str(row["backup_id"]), str(rec["snapshot_at"])


async def restored_id(client: Any, statement: str) -> str:
    [got] = await rows(client, statement)
    return str(got["backup_id"])


async def test_a_time_after_a_refresh_is_the_backup_restored_not_a_newer_one(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` was refreshed from A's backup X; A wrote a row and took Y. B's
    RESTORE DATABASE / TABLE / with replace to a time after Y took Y: A's row,
    which B never had. Now X; a time before the refresh is X too, a backup of
    B's own after it comes first, and a plain RESTORE still takes A's newest
    (a drill server refreshed from production)."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    y, y_at = await backup(a)
    t = await now(b)

    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')") == x
    assert await content(b, "copy") == {(1, "a")}
    assert await restored_id(
        b, f"RESTORE TABLE app.t FROM 'arch' AS copy.t2 WITH (as_of = '{t}')") == x
    assert {r["id"] for r in await rows(b, "SELECT id FROM copy.t2")} == {1}
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' WITH (as_of = '{y_at}', replace = true)") == x
    assert await content(b, "app") == {(1, "a")}
    assert await restored_id(b, "RESTORE DATABASE app FROM 'arch' AS plain") == y

    await ok(b, "INSERT INTO app.t VALUES (3, 'b')")
    mine, mine_at = await backup(b)
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS later WITH (as_of = '{mine_at}')") == mine
    assert await content(b, "later") == {(1, "a"), (3, "b")}


async def test_a_refresh_over_a_newer_backup_of_its_own_is_the_refresh(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` came from A's X0; A took X; B wrote a row and took Z (after X);
    then B was refreshed from X. A time after the refresh took Z, the newest of
    the lineage by then: B's rows the refresh replaced. Now X; a time before
    the refresh (Z's snapshot) is B's history then, Z."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x0, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x0}')")
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    x, _ = await backup(a)
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    z, z_at = await backup(b)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    t = await now(b)

    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')") == x
    assert await content(b, "copy") == {(1, "a"), (3, "a")}
    # Before the refresh: B's own backup is its history then.
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{z_at}')") == z
    assert await content(b, "old") == {(1, "a"), (2, "b")}


async def test_the_backup_restored_from_dropped_is_not_found_never_another(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` was refreshed from A's X, then X was dropped; A has an older
    X0 and a newer Y. A time after the refresh took Y (A's rows B never had):
    NOT_FOUND naming X, neither X0 (rows B had, lost) nor Y; a failed job."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x0, _ = await backup(a)
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    await backup(a)
    await ok(a, f"DROP BACKUP '{x}' IN 'arch'")
    t = await now(b)
    for statement in (f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')",
                      f"RESTORE TABLE app.t FROM 'arch' AS app.t2 WITH (as_of = '{t}')"):
        message = await err(b, statement, "NOT_FOUND")
        assert f"restored from backup '{x}'" in message and "is not among the backups" in message
    jobs = await rows(b, "SELECT status FROM system.jobs WHERE job_type = 'restore' "
                         "ORDER BY created_at DESC LIMIT 1")
    assert jobs == [{"status": "failed"}]
    assert await content(b, "app") == {(1, "a"), (2, "a")}
    assert x0 != x


async def test_refreshed_from_two_servers_in_turn_is_the_last_ones_backup(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """C's `app` came from A's X and C wrote rows and took W; B's from X, then
    from W. C then wrote more and took V. B's time after its second refresh
    took V (C's rows B never had); now W. A time between the two refreshes
    took W too (C's rows, B held X then); now X, A's."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    third = copy.deepcopy(cairn_config)
    third.storage.data_dir = str(tmp_path / "data_c")
    c = await aiohttp_client(create_app(third))
    x, _ = await backup(a)
    for client in (b, c):
        await ok(client, f"RESTORE DATABASE app FROM 'arch' WITH (backup_id = '{x}'"
                         + (", replace = true)" if client is b else ")"))
    between = await now(b)
    await ok(c, "INSERT INTO app.t VALUES (5, 'c')")
    w, w_at = await backup(c)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{w}')")
    await ok(c, "INSERT INTO app.t VALUES (6, 'c')")
    await backup(c)
    await ok(a, "INSERT INTO app.t VALUES (7, 'a')")
    await backup(a)
    t = await now(b)
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')") == w
    assert await content(b, "copy") == {(1, "a"), (5, "c")}
    for n, when in enumerate((between, w_at)):
        assert await restored_id(
            b, f"RESTORE DATABASE app FROM 'arch' AS mid{n} WITH (as_of = '{when}')") == x
        assert await content(b, f"mid{n}") == {(1, "a")}


async def test_a_rollback_to_an_older_backup_of_its_own_is_the_state_after_it(
        client: Any) -> None:
    """A server restores its own older backup Z1 over its `app` (a rollback);
    a time after that took Z2, its newest by then: rows the rollback undid."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, who TEXT); "
                     "INSERT INTO app.t VALUES (1, 'a')")
    z1, _ = await backup(client)
    await ok(client, "INSERT INTO app.t VALUES (2, 'a')")
    z2, z2_at = await backup(client)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{z1}')")
    t = await now(client)
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')") == z1
    assert await content(client, "copy") == {(1, "a")}
    assert await restored_id(
        client, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{z2_at}')") == z2


async def test_a_namespace_restored_before_refresh_times_were_kept(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A namespace whose record says only which server it came from (restored
    before 2026-12-07): which of that server's backups it held is not known,
    so a time takes only a backup of this server's own (NOT_FOUND saying why
    when none); a plain RESTORE still takes that server's newest."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    catalog = state(b).catalog
    rec = catalog.get(Namespace, "app")
    assert rec is not None and rec.restored_from is not None
    catalog.put(Namespace("app", created_at=rec.created_at, options=rec.options,
                          restored_from={"server": rec.restored_from["server"]}))
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    y, _ = await backup(a)
    t = await now(b)
    message = await err(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')",
                        "NOT_FOUND")
    assert "before Cairn recorded which backup" in message, message
    assert await restored_id(b, "RESTORE DATABASE app FROM 'arch' AS plain") == y
    await ok(b, "INSERT INTO app.t VALUES (3, 'b')")
    mine, mine_at = await backup(b)
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{mine_at}')") == mine


async def test_a_backup_after_a_refresh_is_cut_after_it(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """The wall clock stepped back after a refresh (its `at` an hour ahead of
    the clock now): B's next backup was cut before `at`, so a time after it
    did not count it as taken since the refresh. It is cut after `at`."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    catalog = state(b).catalog
    rec = catalog.get(Namespace, "app")
    assert rec is not None and rec.restored_from is not None
    ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    catalog.put(Namespace("app", created_at=rec.created_at, options=rec.options,
                          restored_from={**rec.restored_from, "at": ahead}))
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    _, taken = await backup(b)
    assert parse_time(taken) > parse_time(ahead), (taken, ahead)


async def test_a_refresh_to_a_time_is_held_by_no_backup(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` was restored from A's archive to a time (A's base and changes
    replayed); A then took a plain backup. A time after that restore on B took
    A's newer backup (a row B never had); no backup holds what was installed
    (the bare base lacks the replayed rows): NOT_FOUND saying so."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    t = (await wait_shipped(a, timeout=60))["archived_until"]
    await ok(a, "STOP ARCHIVING DATABASE app")
    [point] = await rows(a, POINTS)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, "
                f"backup_id = '{point['base_backup_id']}', as_of = '{t}')")
    assert await content(b, "app") == {(1, "a"), (2, "a")}
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    await backup(a)
    message = await err(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH "
                           f"(as_of = '{await now(b)}')", "NOT_FOUND")
    assert "restored to a time" in message, message


async def test_a_record_with_a_refresh_time_alone_takes_the_others_backup_by_then(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A record of the first 2026-12-07 keeps when the refresh installed (`at`)
    but not which backup: a time after it takes the other server's newest
    backup taken by `at`, never one after (it took A's newer backup)."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    catalog = state(b).catalog
    rec = catalog.get(Namespace, "app")
    assert rec is not None and rec.restored_from is not None
    kept = {k: rec.restored_from[k] for k in ("server", "at")}
    catalog.put(Namespace("app", created_at=rec.created_at, options=rec.options,
                          restored_from=kept))
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    await backup(a)
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{await now(b)}')") == x


async def test_an_archive_stopped_before_a_refresh_is_the_history_before_it(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` (from A's X0) was archived by B, then stopped; B was refreshed
    from A's X. A time after the refresh was INVALID_ARGUMENT "after the newest
    restorable time" (B's old window), the backup restored never looked at:
    now X; a time in the old window is still B's rows then."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    x0, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x0}')")
    await ok(b, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(b, "INSERT INTO app.t VALUES (10, 'b')")
    then = (await wait_shipped(b, timeout=60))["archived_until"]
    await ok(b, "STOP ARCHIVING DATABASE app")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a')")
    x, _ = await backup(a)
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, backup_id = '{x}')")
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    await backup(a)
    assert await restored_id(
        b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{await now(b)}')") == x
    assert await content(b, "copy") == {(1, "a"), (2, "a")}
    await ok(b, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{then}')")
    assert await content(b, "old") == {(1, "a"), (10, "b")}
