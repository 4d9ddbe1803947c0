"""Whose windows a RESTORE to a time uses in a target several servers share.

Each server has its own namespace `app` (different databases) in one target.
A RESTORE `as_of` without `backup_id` builds only on this server's namespace's
backups and archives, as a plain RESTORE picks only its backups: another
server's START ARCHIVING once took over this server's restores to a time (its
window ending last won, its base and rows restored; or this server's own plain
backups were "in no restorable window"). `backup_id` with `as_of` names another
server's base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.config import Config
from tests.helpers import err, ok, rows

from .test_archive_lineage import POINTS, content, two_servers
from .test_archiving import FAST, wait_shipped


async def test_as_of_never_takes_another_servers_window(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B archives its `app` first, A its own later: a time before A's base is
    NOT_FOUND naming B's base (it restored B's base and rows), a time in A's
    window is A's rows; backup_id with as_of restores B's as of the time."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await ok(b, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    early = (await wait_shipped(b))["archived_until"]
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    await ok(b, "INSERT INTO app.t VALUES (4, 'b')")
    late = (await wait_shipped(a))["archived_until"]
    await wait_shipped(b)

    message = await err(a, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{early}')",
                        "NOT_FOUND")
    points = await rows(a, POINTS)
    [theirs] = [p for p in points if not p["own"]]
    [mine] = [p for p in points if p["own"]]
    assert "another server" in message and theirs["base_backup_id"] in message, message
    assert mine["server"] != theirs["server"] and mine["server"].startswith("sv-")
    assert [p["own"] for p in await rows(b, POINTS)] == [True, False]  # B's started first

    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{late}')")
    assert await content(a, "r") == {(1, "a"), (3, "a")}
    [job] = await rows(a, "SELECT * FROM system.jobs WHERE job_type = 'restore' "
                          "AND status = 'completed'")
    assert job["backup_id"] == mine["base_backup_id"]
    # Another server's window, named by its base.
    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS s WITH "
                f"(backup_id = '{theirs['base_backup_id']}', as_of = '{early}')")
    assert await content(a, "s") == {(1, "b"), (2, "b")}
    message = await err(a, f"RESTORE DATABASE app FROM 'arch' AS s2 WITH "
                           f"(backup_id = '{mine['base_backup_id']}', as_of = '{early}')",
                        "INVALID_ARGUMENT")
    assert "before backup" in message, message


async def test_another_servers_archive_leaves_plain_as_of_alone(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A takes only plain backups of its `app`; B archives its own into the same
    target afterwards. A's restores to a time still take A's own backup (they
    were "in no restorable window" listing B's, then restored B's rows)."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    [backup] = await rows(a, "BACKUP DATABASE app TO 'arch'")
    [before] = await rows(a, "SELECT snapshot_at FROM system.backups")
    await ok(b, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    after = (await wait_shipped(b))["archived_until"]
    await ok(b, "STOP ARCHIVING DATABASE app")
    for n, at in enumerate((before["snapshot_at"], after)):
        await ok(a, f"RESTORE DATABASE app FROM 'arch' AS r{n} WITH (as_of = '{at}')")
        assert await content(a, f"r{n}") == {(1, "a")}, at
    jobs = await rows(a, "SELECT backup_id FROM system.jobs WHERE job_type = 'restore'")
    assert [j["backup_id"] for j in jobs] == [backup["backup_id"]] * 2
    # A plain backup is the base of no archived changes: as_of with it is refused.
    message = await err(a, f"RESTORE DATABASE app FROM 'arch' AS r9 WITH "
                           f"(backup_id = '{backup['backup_id']}', as_of = '{after}')",
                        "INVALID_ARGUMENT")
    assert "base of no archived changes" in message, message


async def restored_from_a(a: Any, b: Any) -> str:
    """B's `app` becomes a copy of A's backup (a drill / refresh copy); the id."""
    [first] = await rows(a, "BACKUP DATABASE app TO 'arch'")
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, "
                f"backup_id = '{first['backup_id']}')")
    assert await content(b, "app") == {(1, "a")}
    return str(first["backup_id"])


async def test_the_server_restored_from_never_gives_a_window(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` was restored from A's backup, then both archive it into one
    target and write rows of their own; B stops first, so A's window ends last.
    B's restore to a time in both windows once took A's (the lineage rule
    counted A's archive as B's): A's rows in B's copy, and with replace B's
    acknowledged rows gone, `completed`. Now B's own window, B's rows."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await restored_from_a(a, b)
    await ok(b, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(b, "INSERT INTO app.t VALUES (2, 'b'), (3, 'b')")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a'), (4, 'a')")
    t = min((await wait_shipped(b, timeout=60))["archived_until"],
            (await wait_shipped(a, timeout=60))["archived_until"])
    await ok(b, "STOP ARCHIVING DATABASE app")
    await ok(a, "INSERT INTO app.t VALUES (5, 'a')")
    await wait_shipped(a, timeout=60)

    points = await rows(b, POINTS)
    [of_a] = [p for p in await rows(a, POINTS) if p["own"]]  # A's own window
    [theirs] = [p for p in points if p["base_backup_id"] == of_a["base_backup_id"]]
    [mine] = [p for p in points if p is not theirs]
    assert mine["own"] is True and theirs["own"] is False, points
    assert theirs["end_time"] > mine["end_time"] >= t >= theirs["start_time"], points
    assert mine["server"] != theirs["server"] == of_a["server"]

    [got] = await rows(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')")
    assert got["backup_id"] == mine["base_backup_id"]
    assert await content(b, "copy") == {(1, "a"), (2, "b"), (3, "b")}
    await ok(b, "INSERT INTO app.t VALUES (6, 'b')")  # after t: the restore takes it away
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (as_of = '{t}', replace = true)")
    assert await content(b, "app") == {(1, "a"), (2, "b"), (3, "b")}
    # A's own restore to that time is A's; B names A's window by its base.
    await ok(a, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{t}')")
    assert await content(a, "r") == {(1, "a"), (2, "a"), (4, "a")}
    await ok(b, f"RESTORE DATABASE app FROM 'arch' AS theirs WITH "
                f"(backup_id = '{theirs['base_backup_id']}', as_of = '{t}')")
    assert await content(b, "theirs") == {(1, "a"), (2, "a"), (4, "a")}
    await ok(a, "STOP ARCHIVING DATABASE app")


async def test_the_server_restored_from_never_hides_a_plain_backup(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` was restored from A's backup; B writes rows and takes a plain
    backup, then A archives its own. B's restore to a time after its backup
    once took A's window (A's rows; with replace over B's). Now B's own backup;
    before the refresh, none: B held its own rows then, not A's."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    first = await restored_from_a(a, b)
    [taken] = await rows(a, "SELECT snapshot_at FROM system.backups")
    before = taken["snapshot_at"]
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    [plain] = await rows(b, "BACKUP DATABASE app TO 'arch'")
    await ok(a, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(a, "INSERT INTO app.t VALUES (2, 'a'), (3, 'a')")
    t = (await wait_shipped(a, timeout=60))["archived_until"]
    await ok(a, "STOP ARCHIVING DATABASE app")
    assert [p["own"] for p in await rows(b, POINTS)] == [False]

    [got] = await rows(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')")
    assert got["backup_id"] == plain["backup_id"]
    assert await content(b, "copy") == {(1, "a"), (2, "b")}
    await ok(b, "INSERT INTO app.t VALUES (3, 'b')")
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (as_of = '{t}', replace = true)")
    assert await content(b, "app") == {(1, "a"), (2, "b")}
    await ok(b, f"RESTORE TABLE app.t FROM 'arch' AS app.t2 WITH (as_of = '{t}')")
    assert {(r["id"], r["who"]) for r in await rows(b, "SELECT * FROM app.t2")} == {
        (1, "a"), (2, "b")}
    # Before the refresh B held its own `app` ((1, 'b')), of which it took no
    # backup: not A's backup B was refreshed from later (it once was: rows B
    # never had then; found by the twenty-first round's regress attacker).
    await err(b, f"RESTORE DATABASE app FROM 'arch' AS old WITH (as_of = '{before}')",
              "NOT_FOUND")
    assert first


async def test_a_refresh_from_a_newer_backup_is_the_history_after_it(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """B's `app` came from A's backup, B wrote a row and took a backup of its
    own, then B was refreshed from A's newer backup. A restore to a time after
    the refresh took B's own backup from before it (its rows, with replace over
    the refreshed ones) while a plain RESTORE took the refresh's: a backup of
    its own counts for a time only when taken after the namespace's last
    restore from another server."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    await restored_from_a(a, b)
    await ok(b, "INSERT INTO app.t VALUES (2, 'b')")
    [own] = await rows(b, "BACKUP DATABASE app TO 'arch'")
    await ok(a, "INSERT INTO app.t VALUES (3, 'a')")
    [newer] = await rows(a, "BACKUP DATABASE app TO 'arch'")
    await ok(b, f"RESTORE DATABASE app FROM 'arch' WITH (replace = true, "
                f"backup_id = '{newer['backup_id']}')")
    [now] = await rows(b, "SELECT strftime(now()::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%gZ') AS t")
    t = now["t"]

    [got] = await rows(b, f"RESTORE DATABASE app FROM 'arch' AS copy WITH (as_of = '{t}')")
    assert got["backup_id"] == newer["backup_id"] != own["backup_id"]
    assert await content(b, "copy") == {(1, "a"), (3, "a")}
    [plain] = await rows(b, "RESTORE DATABASE app FROM 'arch' AS plain")
    assert plain["backup_id"] == newer["backup_id"]
    await ok(b, "INSERT INTO app.t VALUES (4, 'b')")
    [after] = await rows(b, "BACKUP DATABASE app TO 'arch'")
    [taken] = await rows(b, "SELECT snapshot_at FROM system.backups "
                            f"WHERE backup_id = '{after['backup_id']}'")
    [got] = await rows(b, "RESTORE DATABASE app FROM 'arch' AS copy2 WITH "
                          f"(as_of = '{taken['snapshot_at']}')")
    assert got["backup_id"] == after["backup_id"]
    assert await content(b, "copy2") == {(1, "a"), (3, "a"), (4, "b")}
