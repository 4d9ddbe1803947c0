"""Backups written before the typed manifest (tests/fixtures/format1, made by
Cairn at e672077) still verify and restore, in every form: plain, zstd,
encrypted, archive."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import ok, rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "format1"
TARGETS = [("plain", ""), ("zstd", ""), ("enc", " WITH (encryption_passphrase = 'pw')"),
           ("arch.tar", "")]
LIVE = 3  # app.t: ids 2 and 3 (id 1 deleted), app.u: alice's k1


@pytest.mark.parametrize(("target", "options"), TARGETS)
async def test_old_backup_verifies_and_restores(
    client: Any, cairn_config: Config, target: str, options: str
) -> None:
    root = Path(cairn_config.backup.roots[0])
    root.mkdir(parents=True, exist_ok=True)
    src = FIXTURES / target
    if src.is_dir():
        shutil.copytree(src, root / target)
    else:
        shutil.copy(src, root / target)
    (listed,) = await rows(client, f"SHOW BACKUPS IN '{target}'")
    # Written before live rows were counted: `rows` unknown (NULL), 5 stored versions.
    assert (listed["namespace"], listed["tables"], listed["rows"], listed["row_versions"]) == (
        "app", 3, None, 5)
    verify = await rows(client, f"VERIFY BACKUP '{listed['backup_id']}' IN '{target}'{options}")
    assert verify[0]["is_valid"] is True
    (restored,) = (await ok(client, f"RESTORE DATABASE app FROM '{target}'{options}"))[0]["rows"]
    # The restore counts the live rows it installed.
    assert (restored["rows"], restored["row_versions"]) == (LIVE, 5)
    assert await rows(client, "SELECT id, name, d, extra FROM app.t ORDER BY id") == [
        {"id": 2, "name": "b", "d": "2.50", "extra": 7},
        {"id": 3, "name": "c", "d": "3.50", "extra": 8},
    ]
    assert await rows(client, "SELECT k, v FROM app.u", user="alice") == [
        {"k": "k1", "v": {"a": 1}}]
    await ok(client, "INSERT INTO app.t VALUES (4, 'd', 4.5, 9)")
    assert await rows(client, "SELECT count(*) AS n FROM app.t") == [{"n": 3}]
