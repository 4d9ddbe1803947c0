"""A base backup whose manifest cannot be read does not make its window
vanish. It was dropped with the other unreadable manifests, so SHOW RESTORE
POINTS listed nothing, VERIFY ARCHIVE called the archive valid with no
window, and a RESTORE as_of a time inside the window was NOT_FOUND "no
backup … taken at or before" (after an upgrade, a base whose manifest the new
rules refused did the same). Now the damaged base is named: a restore
point row with its `error`, VERIFY ARCHIVE invalid, RESTORE BACKUP_INVALID.
A base whose body held NaN answered 500 to all three."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from server.repos import repository
from storage.archive import store
from tests.e2e.test_manifest_values import plant
from tests.helpers import reseal, rows, sql, state

from .test_archiving import segment_files
from .test_verify_bases import archived_with_one_object


def flip(path: Path) -> None:  # checksum broken: nothing about it is known
    data = bytearray(path.read_bytes())
    at = data.index(b'"snapshot_at"') + 20
    data[at] = ord("7") if data[at] != ord("7") else ord("6")
    path.write_bytes(bytes(data))


def refused(path: Path) -> None:  # checksum good (its times vouched for), a field refused
    reseal(path, lambda doc: doc.update(rows=-1))


def nan_body(path: Path) -> None:  # its body holding NaN (a ValueError, a 500)
    plant(path.parents[1], path.stem, path.stem, b"NaN")


@pytest.mark.parametrize("damage", [flip, refused, nan_body])
async def test_a_damaged_base_manifest_is_named_not_hidden(
        client: Any, cairn_config: Config, damage: Any) -> None:
    end, base, _ = await archived_with_one_object(client, cairn_config)
    [manifest] = (Path(cairn_config.backup_roots[0]) / "arch" / "manifests").glob("*.json")
    try:
        damage(manifest)
    except (ValueError, KeyError):
        pytest.fail("the base manifest is not plain JSON")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert point["base_backup_id"] == base and point["end_time"] == end, point
    assert point["base_backups"] == 0 and "cannot be read" in point["error"], point
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False and report["windows"] == [], report
    assert f"backup '{base}'" in json.dumps(report["errors"]), report
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{end}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert f"backup '{base}'" in body["error"]["message"] and "may be the base" in \
        body["error"]["message"], body
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'r'")


async def test_an_intact_window_shows_no_error(client: Any, cairn_config: Config) -> None:
    _, base, _ = await archived_with_one_object(client, cairn_config)
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert point["base_backup_id"] == base and point["error"] is None, point



async def test_a_damaged_base_keeps_its_archived_changes_from_a_prune(
        client: Any, cairn_config: Config) -> None:
    """The prune of archived changes (after DROP BACKUP, keep_last) skipped a
    base it could not read, as if there were none, and deleted the segments
    its window needs; a manifest listed but not served now did the same.
    While a manifest that may be of the namespace cannot be read, none go."""
    await archived_with_one_object(client, cairn_config)
    root = Path(cairn_config.backup_roots[0])
    [manifest] = (root / "arch" / "manifests").glob("*.json")
    flip(manifest)
    before = segment_files(root)
    assert before
    assert store.prune(repository(state(client), "arch"), "app", lambda _: False) == 0
    assert segment_files(root) == before
