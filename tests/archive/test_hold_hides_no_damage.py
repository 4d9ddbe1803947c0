"""A lock named for an archive (`locks/rs-<id>.<archive_id>.json`, what a
restore to a time writes, storage/archive/holds.py) excuses a dropped base's
run in VERIFY ARCHIVE and SHOW RESTORE POINTS only while a restore of this
server replays it (restore_hold.held_here).

Before, any such lock did: one left by a restore that died (its process gone,
or another host's not written for a day) or a damaged one made a target whose
base manifest was removed VERIFY valid, errors [] and no window, with no
error row, while every RESTORE as_of into it was refused (the round-13 lie
tests/archive/test_lost_base_and_tail.py guards, back). Then one planted
fresh, or naming a live process, still did: a lock in the target says
nothing anyone who can write it could not say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
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


@pytest.mark.parametrize("lock", ["process gone", "other host, a day old", "damaged",
                                  "a live process", "other host, fresh"])
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
    elif lock == "a live process":  # planted: no restore of this server holds it
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # after pid 1 started
        path.write_text(json.dumps({**doc, "pid": 1, "created_at": now}))
    elif lock == "other host, fresh":
        path.write_text(json.dumps({**doc, "host": "another-host"}))
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
