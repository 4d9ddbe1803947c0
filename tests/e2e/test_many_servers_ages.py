"""Two servers, one target, each with its own namespace `app`: different
databases of one name. Once A ATTACHed the target, B's backups of its `app`
made A's `app` read freshly backed up (cairn_backup_age_seconds near 0, a
last-success time; the web console's Backup age panel the same), though A had
never backed it up and A's own RESTORE without backup_id refused them as
another server's. The age counts only what that RESTORE takes as its own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from server.config import Config
from server.metrics import _epoch
from tests.archive.test_archive_lineage import two_servers
from tests.helpers import err, ok, reseal, rows
from tests.server.test_metrics import scrape

ROOT = Path(__file__).resolve().parents[2]
AGE, LAST = "cairn_backup_age_seconds", "cairn_backup_last_success_timestamp_seconds"


def panel_query() -> str:
    """The web console's Backup age query, as server/static/timeline.js sends it."""
    js = (ROOT / "server" / "static" / "timeline.js").read_text()
    ahead = re.search(r'const AHEAD = "([^"]+)"', js)
    query = re.search(r"const ages = await rows\(`(.*?)`\);", js, re.S)
    assert ahead is not None and query is not None
    return query.group(1).replace("${AHEAD}", ahead.group(1))


async def ages(client: Any, ns: str) -> tuple[float, float | None, dict[str, Any]]:
    """`ns`'s age and last-success time in /metrics, and its row in the console's panel."""
    samples = await scrape(client)
    labels = (("namespace", ns),)
    [panel] = [r for r in await rows(client, panel_query()) if r["namespace"] == ns]
    return samples[(AGE, labels)], samples.get((LAST, labels)), panel


async def own(client: Any) -> dict[str, bool]:
    """`own` of each backup in system.backups, which SHOW BACKUPS, and with IN
    the target's manifests, say alike."""
    said = [{r["backup_id"]: r["own"] for r in await rows(client, text)}
            for text in ("SELECT * FROM system.backups", "SHOW BACKUPS",
                         "SHOW BACKUPS IN 'shared'")]
    assert said[0] == said[1] == said[2], said
    return said[0]


async def test_another_servers_backup_of_the_name_never_makes_the_age_fresh(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    before, last, panel = await ages(a, "app")
    assert last is None and panel["backups"] == 0 and panel["newest"] is None
    plain = "WITH (compression = 'none')"
    [theirs] = await rows(b, f"BACKUP DATABASE app TO 'shared' {plain}")
    [old] = await rows(b, f"BACKUP DATABASE app TO 'shared' {plain}")
    # written before manifests named their server: another database all the same
    # (its namespace's creation time is B's)
    reseal(Path(cairn_config.backup.roots[0]) / "shared" / "manifests" / f"{old['backup_id']}.json",
           lambda doc: doc["namespace_record"].pop("server"))
    attached = await rows(a, "ATTACH BACKUPS FROM 'shared'")
    assert {r["status"] for r in attached} == {"attached"}, attached
    age, last, panel = await ages(a, "app")
    assert last is None and age >= before, (age, before)
    assert panel["backups"] == 0 and panel["newest"] is None, panel
    assert await own(a) == {theirs["backup_id"]: False, old["backup_id"]: False}
    message = await err(a, "RESTORE DATABASE app FROM 'shared' AS chk", "NOT_FOUND")
    assert "another server" in message, message

    # A's own backup counts, and only it.
    [mine] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    [record] = await rows(a, f"SELECT created_at FROM system.backups "
                             f"WHERE backup_id = '{mine['backup_id']}'")
    age, last, panel = await ages(a, "app")
    [made] = [r for r in await rows(a, "SHOW BACKUPS") if r["backup_id"] == mine["backup_id"]]
    assert last == _epoch(made["created_at"]), (last, made)
    assert panel["backups"] == 1 and panel["newest"] == record["created_at"], panel
    assert (await own(a))[mine["backup_id"]] is True


async def test_the_database_this_one_was_restored_from_counts_as_restore_takes_it(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A restored B's `app` over its own (a drill server refreshed from
    production): B's backups of that database are the ones A's RESTORE without
    backup_id takes, and so the ones its age counts."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    [theirs] = await rows(b, "BACKUP DATABASE app TO 'shared'")
    await ok(a, "ATTACH BACKUPS FROM 'shared'")
    assert (await ages(a, "app"))[1] is None
    await ok(a, f"RESTORE DATABASE app FROM 'shared' WITH (replace = true, "
                f"backup_id = '{theirs['backup_id']}')")
    [newer] = await rows(b, "BACKUP DATABASE app TO 'shared'")
    await ok(a, "ATTACH BACKUPS FROM 'shared'")
    [got] = await rows(a, "RESTORE DATABASE app FROM 'shared' AS chk")
    assert got["backup_id"] == newer["backup_id"]
    assert await own(a) == {theirs["backup_id"]: True, newer["backup_id"]: True}
    [made] = await rows(a, f"SELECT created_at FROM system.backups "
                           f"WHERE backup_id = '{newer['backup_id']}'")
    _, last, panel = await ages(a, "app")
    assert last is not None and panel["backups"] == 2 and panel["newest"] == made["created_at"]
