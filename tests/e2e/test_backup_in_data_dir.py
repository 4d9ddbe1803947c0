"""A backup root that holds the server's data directory ([backup] roots =
[data_dir], or ["/"]) let BACKUP write into the server's own tmp/, files/ and
catalog/: each "completed", and the next start's sweep deleted them while
SHOW BACKUPS still listed them. A target there is PERMISSION_DENIED; only the
data directory's backups/ (the default root) may hold backups."""

from __future__ import annotations

from typing import Any

import pytest

from server.config import Config
from tests.helpers import ok, sql


@pytest.mark.parametrize("roots", ["data_dir", "slash"])
async def test_backup_into_the_data_dirs_own_folders_is_refused(
        aiohttp_client: Any, cairn_config: Config, roots: str) -> None:
    from server.app import create_app

    data = cairn_config.data_dir
    cairn_config.backup.roots = [str(data)] if roots == "data_dir" else ["/"]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (k BIGINT PRIMARY KEY); "
                     "INSERT INTO a.t VALUES (1); FLUSH TABLE a.t")
    names = ["tmp", "files", "catalog", "elsewhere"]
    targets = names if roots == "data_dir" else [str(data / n) for n in names]
    for target in targets:
        for statement in (f"BACKUP DATABASE a TO '{target}'", f"SHOW BACKUPS IN '{target}'"):
            status, body = await sql(client, statement)
            assert (status, body["error"]["code"]) == (403, "PERMISSION_DENIED"), body
            assert body["error"]["message"] == (
                f"backup target '{target}' is not allowed: it is inside the server's data "
                f"directory, where only its backups/ folder may hold backups")
    assert sorted(p.name for p in data.iterdir()) == ["catalog", "files", "tmp"]
    assert list((data / "tmp").iterdir()) == []
    target = "backups/nightly" if roots == "data_dir" else str(data / "backups" / "nightly")
    made = (await ok(client, f"BACKUP DATABASE a TO '{target}'"))[0]["rows"][0]
    assert made["status"] == "completed"
    assert (data / "backups" / "nightly" / "manifests" / f"{made['backup_id']}.json").exists()


async def test_the_default_root_in_the_data_dir_still_works(
        aiohttp_client: Any, cairn_config: Config) -> None:
    from server.app import create_app

    cairn_config.backup.roots = []  # ["<data_dir>/backups"]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE a")
    made = (await ok(client, "BACKUP DATABASE a TO 'nightly'"))[0]["rows"][0]
    assert made["target"] == str(cairn_config.data_dir / "backups" / "nightly")
