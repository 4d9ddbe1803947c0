"""VERIFY ARCHIVE, SHOW RESTORE POINTS and RESTORE as_of when the first
segments after an archive's base backup are gone from the target (a bucket
rule, an operator). Before, no gap was named: VERIFY ARCHIVE said valid,
errors [] and no window; SHOW RESTORE POINTS listed nothing; a RESTORE as_of
a time after the hole was INVALID_ARGUMENT "no restorable window", and one
at the base's own instant (the base alone is exact to it) was refused too.
And the window that ends at a gap in the middle was listed by SHOW RESTORE
POINTS with `error` null and nothing said of the gap after it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import ok, rows, sql

from .test_archiving import FAST, segment_files, wait_shipped


def _non_empty(seg: Path) -> bool:
    after_lsn, last_lsn = seg.name.split("-")[:2]
    return after_lsn != last_lsn


async def _archived(client: Any) -> tuple[str, list[str]]:
    """Row 0 in the base; rows 1, 2, 3 archived each in a segment of its own;
    archiving stopped. The base's snapshot time and the three shipped times."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY)")
    await ok(client, "INSERT INTO app.t VALUES (0)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    shipped = []
    for i in (1, 2, 3):
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
        shipped.append((await wait_shipped(client))["archived_until"])
    await ok(client, "STOP ARCHIVING DATABASE app")
    [base] = await rows(client, "SHOW BACKUPS FOR DATABASE app IN 'arch'")
    return base["snapshot_at"], shipped


async def _refused(client: Any, at: str, gap: str) -> None:
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{at}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", (at, body)
    assert gap in body["error"]["message"], (gap, body)
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'r'")


@pytest.mark.parametrize("lost", ["first", "through row 1"])
async def test_a_first_segment_removed_is_a_gap(
        client: Any, cairn_config: Config, lost: str) -> None:
    base_at, shipped = await _archived(client)
    segs = segment_files(Path(cairn_config.backup_roots[0]))
    changed = [s for s in segs if _non_empty(s)]
    gone = segs[:1] if lost == "first" else segs[:segs.index(changed[0]) + 1]
    for seg in gone:
        seg.unlink()
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False, report
    [gap] = [e for e in report["errors"] if "gap between" in e]
    assert f"and {segs[len(gone)].name}" in gap, (gap, segs)
    assert "base backup" in gap, gap
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert [p["error"] for p in points] == [gap], points
    for at in shipped:  # after the hole (and, when row 1's went, in it)
        await _refused(client, at, gap)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS b WITH (as_of = '{base_at}')")
    assert await rows(client, "SELECT id FROM b.t ORDER BY id") == [{"id": 0}]


async def test_the_window_before_a_middle_gap_is_shown_with_the_gap(
        client: Any, cairn_config: Config) -> None:
    """A segment removed from the middle: SHOW RESTORE POINTS lists the
    window before it, restorable (error null), and the changes after it as a
    row whose error names the gap, as VERIFY ARCHIVE and RESTORE do."""
    _, shipped = await _archived(client)
    segs = segment_files(Path(cairn_config.backup_roots[0]))
    changed = [s for s in segs if _non_empty(s)]
    changed[-2].unlink()  # row 2's
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    [gap] = [e for e in report["errors"] if "gap between" in e]
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert [p["error"] for p in points] == [None, gap], points
    assert points[0]["end_time"] == points[1]["start_time"], points
    assert points[1]["base_backups"] == 0 and points[1]["base_backup_id"] is None, points
    await _refused(client, shipped[-1], gap)
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS b "
                     f"WITH (as_of = '{points[0]['end_time']}')")
    assert await rows(client, "SELECT id FROM b.t ORDER BY id") == [{"id": 0}, {"id": 1}]


@pytest.mark.parametrize("lost", ["tail", "every segment", "the folder"])
async def test_changes_shipped_and_gone_are_named_alike(
        client: Any, cairn_config: Config, lost: str) -> None:
    """This server shipped changes the target no longer holds (its catalog
    says how far it shipped): VERIFY ARCHIVE, SHOW RESTORE POINTS and RESTORE
    as_of a time after what is left name them. Before, with every segment
    gone VERIFY said only "no archived changes" and RESTORE was
    INVALID_ARGUMENT "no restorable window"; with the tail gone SHOW RESTORE
    POINTS listed the shortened window alone, error null."""
    base_at, shipped = await _archived(client)
    segs = segment_files(Path(cairn_config.backup_roots[0]))
    changed = [s for s in segs if _non_empty(s)]
    if lost == "tail":
        for seg in segs[segs.index(changed[-1]):]:
            seg.unlink()
    elif lost == "every segment":
        for seg in segs:
            seg.unlink()
    else:
        shutil.rmtree(segs[0].parent)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False, report
    [missing] = [e for e in report["errors"] if "are missing" in e]
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert points[-1]["error"] == missing and points[-1]["base_backups"] == 0, points
    [archive] = await rows(client, "SELECT * FROM system.archives WHERE namespace = 'app'")
    assert points[-1]["end_time"] == archive["archived_until"], (points, archive)
    assert [p["error"] for p in points[:-1]] == [None] * (len(points) - 1), points
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{shipped[-1]}')")
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert "archived changes are missing" in body["error"]["message"], body
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'r'")
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS b WITH (as_of = '{base_at}')")
    assert await rows(client, "SELECT id FROM b.t ORDER BY id") == [{"id": 0}]


async def test_a_dropped_base_of_a_stopped_archive_is_no_loss(
        client: Any, cairn_config: Config) -> None:
    """DROP BACKUP of a stopped archive's only base prunes its segments: what
    this server shipped is gone by the user's hand, nothing the target lost.
    VERIFY ARCHIVE says only that nothing is archived, SHOW RESTORE POINTS
    lists nothing and RESTORE as_of finds no backup."""
    _, shipped = await _archived(client)
    [base] = await rows(client, "SHOW BACKUPS FOR DATABASE app IN 'arch'")
    await ok(client, f"DROP BACKUP '{base['backup_id']}' IN 'arch'")
    assert segment_files(Path(cairn_config.backup_roots[0])) == []
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert [e for e in report["errors"] if "missing" in e] == [], report
    assert await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'") == []
    status, body = await sql(client, f"RESTORE DATABASE app FROM 'arch' AS r "
                                     f"WITH (as_of = '{shipped[-1]}')")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND", body
