"""A lock named for an archive (`locks/rs-<id>.<archive_id>.json`, what a
restore to a time writes, storage/archive/holds.py) excuses a dropped base's
run in VERIFY ARCHIVE and SHOW RESTORE POINTS only while its restore may run.

Before, any such lock did: one left by a restore that died (its process gone,
or another host's not written for a day) or a damaged one made a target whose
base manifest was removed VERIFY valid, errors [] and no window, with no
error row, while every RESTORE as_of into it was refused (the round-13 lie
tests/archive/test_lost_base_and_tail.py guards, back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from storage.backup import locks
from tests.helpers import rows

from .test_lost_base_and_tail import _archived, _base_manifest

DAY = 24 * 3600


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("lock", ["process gone", "other host, a day old", "damaged"])
async def test_a_left_or_damaged_hold_hides_no_lost_base(
        client: Any, cairn_config: Config, lock: str) -> None:
    root = Path(cairn_config.backup_roots[0])
    other, _ = await _archived(client, root)
    base = _base_manifest(root, other)
    [aid] = {p.parent.name for p in (root / "arch" / "archives").rglob("*.seg")}
    base.unlink()
    lock_id = f"rs-left.{aid}"
    path = root / "arch" / "locks" / f"{lock_id}.json"
    path.parent.mkdir(exist_ok=True)
    doc = json.loads(locks.encode(lock_id, "2026-01-01T00:00:00.000000Z", []))
    if lock == "process gone":
        path.write_text(json.dumps({**doc, "pid": _dead_pid()}))
    elif lock == "other host, a day old":
        path.write_text(json.dumps({**doc, "host": "another-host"}))
        old = path.stat().st_mtime - 2 * DAY
        os.utime(path, (old, old))
    else:
        path.write_text("{not a lock")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False and report["windows"] == [], report
    assert "no base backup of its changes" in json.dumps(report["errors"]), report
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert [p["error"] for p in points if p["error"]], points
