"""VERIFY ARCHIVE and RESTORE as_of when what an archive needs is gone from
the target. Before, with the base backup's manifest removed (or replaced by a
copy of another backup's manifest) VERIFY ARCHIVE said valid, errors [] and
no window, while every RESTORE as_of into it was refused; with the last
segments removed it said valid too, and a RESTORE as_of a time this server
had archived was INVALID_ARGUMENT "after the newest restorable time", as if
the user had asked for the future."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import ok, rows, sql

from .test_archiving import FAST, segment_files, wait_shipped


async def _archived(client: Any, root: Path) -> tuple[str, Path]:
    """app.t archived into 'arch' in two shipments, beside another namespace's
    backup in the same target; archiving stopped. (The other backup's manifest.)"""
    await ok(client, "CREATE NAMESPACE other; CREATE TABLE other.t (id INT)")
    [other] = await rows(client, "BACKUP DATABASE other TO 'arch'")
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY)")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    for i in (2, 3):
        # Shipped once nothing waits (lag_ms 0). Not "archived_until past now()
        # read after the INSERT": a cycle's mark between the commit and the read
        # left that false until the idle archive's 10 s heartbeat.
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
        await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    return other["backup_id"], root / "arch" / "manifests" / f"{other['backup_id']}.json"


def _base_manifest(root: Path, other: str) -> Path:
    [base] = [m for m in (root / "arch" / "manifests").glob("*.json") if other not in m.name]
    return base


@pytest.mark.parametrize("damage", ["removed", "replaced"])
async def test_a_run_whose_base_is_gone_is_invalid(
        client: Any, cairn_config: Config, damage: str) -> None:
    root = Path(cairn_config.backup_roots[0])
    other, other_manifest = await _archived(client, root)
    base = _base_manifest(root, other)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report  # intact first
    if damage == "removed":
        base.unlink()
    else:
        shutil.copyfile(other_manifest, base)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False and report["windows"] == [], report
    if damage == "removed":
        assert "no base backup of its changes" in json.dumps(report["errors"]), report
    else:  # the copy is judged by this server's record of the base: named, a possible base
        assert f"backup '{base.stem}'" in json.dumps(report["errors"]), report
    # SHOW RESTORE POINTS lists the run with the same error (it listed nothing
    # when the base was removed)
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    [point] = points
    assert point["base_backups"] == 0, points
    [error] = report["errors"]
    assert point["error"] == error if damage == "removed" else error.startswith(point["error"])


def _non_empty(seg: Path) -> bool:
    after_lsn, last_lsn = seg.name.split("-")[:2]
    return after_lsn != last_lsn


async def test_a_lost_tail_is_named_by_verify_and_restore(
        client: Any, cairn_config: Config) -> None:
    root = Path(cairn_config.backup_roots[0])
    await _archived(client, root)
    [archive] = await rows(client, "SELECT * FROM system.archives WHERE namespace = 'app'")
    segs = segment_files(root)
    changed = [s for s in segs if _non_empty(s)]
    assert len(changed) >= 2, segs  # the two shipments
    for seg in segs[segs.index(changed[-1]):]:
        seg.unlink()
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False, report
    assert "the changes after it are missing" in json.dumps(report["errors"]), report
    status, body = await sql(client, "RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{archive['archived_until']}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "archived changes are missing" in body["error"]["message"], body
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'r'")


async def test_a_hole_in_the_middle_is_named_by_verify_and_restore(
        client: Any, cairn_config: Config) -> None:
    """A segment removed from the middle of an archive (a bucket rule, an
    operator): VERIFY ARCHIVE names the gap, and a RESTORE to a time after it
    was INVALID_ARGUMENT "after the newest restorable time", as if the user
    had asked for a time not archived yet; now BACKUP_INVALID naming the gap.
    A time before the hole restores as ever."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    shipped = []
    for i in (1, 2, 3):  # each in a segment of its own
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
        shipped.append((await wait_shipped(client))["archived_until"])
    await ok(client, "STOP ARCHIVING DATABASE app")
    segs = segment_files(Path(cairn_config.backup_roots[0]))
    changed = [s for s in segs if _non_empty(s)]
    assert len(changed) >= 3 and segs.index(changed[-2]) > 0, segs
    changed[-2].unlink()  # row 2's
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False, report
    [gap] = [e for e in report["errors"] if "gap between" in e]
    messages = []
    for at in shipped[1:]:  # in the hole, and after it
        status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                         f"WITH (as_of = '{at}')")
        assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
        messages.append(body["error"]["message"])
        assert "archived changes" in messages[-1] and gap in messages[-1], (gap, body)
    jobs = await rows(client, "SELECT status, error_message FROM system.jobs "
                              "WHERE job_type = 'restore' ORDER BY created_at")
    assert jobs == [{"status": "failed", "error_message": m} for m in messages], jobs
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS b WITH (as_of = '{shipped[0]}')")
    assert await rows(client, "SELECT id FROM b.t ORDER BY id") == [{"id": 1}]
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'r'")
