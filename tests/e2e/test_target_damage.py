"""A broken backup root or a damaged target folder, met by the statements:
each fails only what needs it, with a 4xx naming it, never a 500 and never
silence (a target whose `manifests` is a file looked empty)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import err, fill, ok, rows


@pytest.fixture
def cairn_config(cairn_config: Config, tmp_path: Path) -> Config:
    cairn_config.backup.roots = [str(tmp_path / "backups"), str(tmp_path / "second")]
    return cairn_config


async def test_a_root_that_is_a_file_fails_only_the_targets_in_it(
        client: Any, tmp_path: Path) -> None:
    """Roots [A, B], B replaced by a file (an unmounted mount point): every
    backup statement answered 500 FileExistsError, those in A too."""
    await fill(client, files=1)
    first = (await ok(client, "BACKUP DATABASE app TO 'bk'"))[0]["rows"][0]["backup_id"]
    second = tmp_path / "second"
    shutil.rmtree(second)
    second.write_text("not a directory")
    await ok(client, "BACKUP DATABASE app TO 'bk2'")
    await ok(client, f"BACKUP DATABASE app TO '{tmp_path / 'backups' / 'bk3'}'")
    assert len(await rows(client, "SHOW BACKUPS IN 'bk'")) == 1
    assert (await ok(client, f"VERIFY BACKUP '{first}'"))[0]["rows"][0]["is_valid"] is True
    await ok(client, "RESTORE DATABASE app FROM 'bk' AS copy")
    await ok(client, f"DROP BACKUP '{first}'")
    for statement in (f"BACKUP DATABASE app TO '{second / 'x'}'",
                      f"SHOW BACKUPS IN '{second / 'x'}'",
                      f"ATTACH BACKUPS FROM '{second / 'x'}'"):
        message = await err(client, statement, "INVALID_ARGUMENT")
        assert f"backup root '{second}' is not a directory" in message, statement
    assert second.read_text() == "not a directory"


async def test_a_target_whose_manifests_is_a_file_is_damaged_not_empty(
        client: Any, tmp_path: Path) -> None:
    """SHOW BACKUPS IN answered no rows, ATTACH '0 of 0', RESTORE 'no backup'."""
    await fill(client, files=1)
    await ok(client, "BACKUP DATABASE app TO 'bk'")
    manifests = tmp_path / "backups" / "bk" / "manifests"
    shutil.rmtree(manifests)
    manifests.write_text("x")
    for statement in ("SHOW BACKUPS IN 'bk'", "ATTACH BACKUPS FROM 'bk'",
                      "RESTORE DATABASE app FROM 'bk' AS copy",
                      "BACKUP DATABASE app TO 'bk'"):
        message = await err(client, statement, "BACKUP_INVALID")
        assert "holds a file at 'manifests' where a folder belongs" in message, statement
    assert manifests.read_text() == "x"
    assert "copy" not in {r["namespace"] for r in await rows(client, "SHOW NAMESPACES")}
