"""Two servers, one target: B drops a backup A wrote (DROP BACKUP drops any
by id). A forgets its record once it finds the backup gone from the target
(SHOW BACKUPS IN, RESTORE, VERIFY BACKUP): it went on listing it in
SHOW BACKUPS and system.backups for good, and counting it in
cairn_backup_age_seconds, so the staleness alert never fired. A target that
cannot be read, or is not there at all, proves nothing: nothing is forgotten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog.errors import Unavailable
from server.config import Config
from storage.backup import Repository
from tests.archive.test_archive_lineage import two_servers
from tests.helpers import err, ok, rows
from tests.server.test_metrics import scrape

LAST = "cairn_backup_last_success_timestamp_seconds"


async def listed(client: Any) -> list[str]:
    """This server's catalog of backups of `app` (no target is read)."""
    return [r["backup_id"] for r in await rows(client, "SHOW BACKUPS FOR DATABASE app")]


async def test_a_backup_another_server_dropped_is_forgotten(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    finds = [
        ("VERIFY BACKUP '{id}'", "NOT_FOUND"),  # found by the catalog's record
        ("RESTORE DATABASE app FROM 'shared' AS copy", "NOT_FOUND"),
        ("RESTORE DATABASE app FROM 'shared' AS copy WITH (backup_id = '{id}')", "NOT_FOUND"),
        ("SHOW BACKUPS IN 'shared'", None),
    ]
    for statement, code in finds:
        kept = await listed(a)
        [mine] = await rows(a, "BACKUP DATABASE app TO 'shared'")
        await ok(b, f"DROP BACKUP '{mine['backup_id']}' IN 'shared'")
        assert mine["backup_id"] in await listed(a)  # nothing read the target yet
        text = statement.format(id=mine["backup_id"])
        if code is None:
            await ok(a, text)
        else:
            await err(a, text, code)
        assert mine["backup_id"] not in await listed(a), statement
        assert set(kept) <= set(await listed(a)), statement  # the others stay
    assert await listed(a) == []
    [newest] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    assert (LAST, (("namespace", "app"),)) in await scrape(a)
    await ok(b, f"DROP BACKUP '{newest['backup_id']}' IN 'shared'")
    await rows(a, "SHOW BACKUPS IN 'shared'")
    assert await rows(a, "SELECT * FROM system.backups") == []
    samples = await scrape(a)
    assert (LAST, (("namespace", "app"),)) not in samples


async def test_nothing_is_forgotten_without_proof(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A target moved away (an unmounted disk) or one that fails to list
    forgets no record: only a manifest absent from a target that is there does."""
    a, b = await two_servers(aiohttp_client, cairn_config, tmp_path)
    [mine] = await rows(a, "BACKUP DATABASE app TO 'shared'")
    target = Path(cairn_config.backup.roots[0]) / "shared"
    target.rename(target.with_name("elsewhere"))
    await err(a, f"VERIFY BACKUP '{mine['backup_id']}'", "NOT_FOUND")
    await err(a, "RESTORE DATABASE app FROM 'shared' AS copy", "NOT_FOUND")
    assert await listed(a) == [mine["backup_id"]]
    target.mkdir()  # an empty mount point where the disk was: no Cairn target, no proof
    await ok(a, "SHOW BACKUPS IN 'shared'")
    await err(a, f"VERIFY BACKUP '{mine['backup_id']}'", "NOT_FOUND")
    await err(a, f"DROP BACKUP '{mine['backup_id']}' IN 'shared'", "NOT_FOUND")
    await ok(a, f"DROP BACKUP IF EXISTS '{mine['backup_id']}' IN 'shared'")
    assert await listed(a) == [mine["backup_id"]]  # DROP BACKUP forgot it there too
    target.rmdir()
    target.with_name("elsewhere").rename(target)

    await ok(b, f"DROP BACKUP '{mine['backup_id']}' IN 'shared'")

    def fails(self: Repository) -> list[str]:
        raise Unavailable(f"backup target '{self.uri}' cannot be read now: I/O error")

    monkeypatch.setattr(Repository, "manifest_ids", fails)
    await err(a, f"VERIFY BACKUP '{mine['backup_id']}'", "NOT_FOUND")
    assert await listed(a) == [mine["backup_id"]]
    monkeypatch.undo()
    await err(a, f"VERIFY BACKUP '{mine['backup_id']}'", "NOT_FOUND")
    assert await listed(a) == []
