"""A restore to a time holds the archived segments it replays, as it holds its
base's objects (server/restore_hold.py): a DROP BACKUP of its base, or a
BACKUP's keep_last that drops it, beside the restore no longer prunes the
segments it has yet to read.

Before, the base's objects stayed (the restore's lock named them) but the
archive's prune (storage/archive/store.py `prune`) deleted every segment of
the run the dropped base started, and the restore, parked before its first
segment (a PAUSE JOB, or a slow target), failed "archived segment … does not
exist". The replay is parked exactly: a gate before it reads its first
segment, the real reads after it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from storage.archive import pitr
from tests.helpers import fill, job_row, ok, rows, wait_job

from .test_archiving import wait_shipped
from .test_restore_beside import archived_end


def segments(target: Path) -> list[Path]:
    return [p for p in (target / "archives").rglob("*.seg") if p.is_file()]


async def until(what: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # seconds under load
    while not what():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("drop", ["drop backup", "keep_last"])
async def test_a_drop_of_its_base_beside_a_restore_to_a_time_leaves_its_segments(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drop: str) -> None:
    await fill(client, files=3)
    (base,) = await rows(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    base_id = (await job_row(client, base["job_id"]))["backup_id"]
    for n in range(3):
        await ok(client, f"INSERT INTO app.blobs VALUES ({100000 + n}, 'archived')")
    end = await archived_end(client)
    target = tmp_path / "backups" / "arch"
    assert segments(target)

    at, go = threading.Event(), threading.Event()
    changes = pitr.changes

    def gated(*a: Any, **k: Any) -> Any:  # in the replay's thread, before its first read
        at.set()
        assert go.wait(120)
        yield from changes(*a, **k)

    monkeypatch.setattr(pitr, "changes", gated)
    try:
        (job,) = await rows(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                                    f"(as_of = '{end}', detached = true)")
        await until(at.is_set)
        if drop == "drop backup":
            await ok(client, f"DROP BACKUP '{base_id}' IN 'arch'")
        else:  # the archive is stopped: the new backup is no base, the old one goes
            (new,) = await rows(client, "BACKUP DATABASE app TO 'arch' WITH (keep_last = 1)")
            assert (await job_row(client, new["job_id"]))["result"]["dropped"] == [base_id]
        # Before, the segments went here, under the parked restore.
        assert segments(target)
    finally:
        go.set()
    row = await wait_job(client, str(job["job_id"]), timeout=60)
    assert row["status"] == "completed", row["error_message"]
    assert await rows(client, "SELECT count(*) AS n FROM r.blobs") == [{"n": 303}]
    # Once the restore has let go, what the dropped base left goes too.
    assert segments(target) == []
    assert await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'") == []


async def test_the_run_held_for_a_restore_is_no_loss_to_verify_or_show(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Archiving runs; a keep_last drops its base while a restore to a time
    replays that base's run: the run stays (above) and is what a drop leaves
    until the prune, not changes lost. Without this, VERIFY ARCHIVE was
    INVALID and SHOW RESTORE POINTS showed the run "no base backup of its
    changes … is in the target" for as long as the restore ran."""
    await fill(client, files=2)
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    for n in range(3):  # a segment each: the prune leaves only the newest, past the base's cut
        await ok(client, f"INSERT INTO app.blobs VALUES ({100000 + n}, 'archived')")
        await wait_shipped(client)
    (point,) = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    at, go = threading.Event(), threading.Event()
    changes = pitr.changes

    def gated(*a: Any, **k: Any) -> Any:
        at.set()
        assert go.wait(120)
        yield from changes(*a, **k)

    monkeypatch.setattr(pitr, "changes", gated)
    try:
        (job,) = await rows(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                                    f"(as_of = '{point['end_time']}', detached = true)")
        await until(at.is_set)
        await ok(client, "BACKUP DATABASE app TO 'arch' WITH (keep_last = 1)")
        (held,) = await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
        shown = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    finally:
        go.set()
    assert held["is_valid"] is True, held["errors"]
    assert [p["error"] for p in shown if p["error"]] == []
    row = await wait_job(client, str(job["job_id"]), timeout=60)
    assert row["status"] == "completed", row["error_message"]
    assert await rows(client, "SELECT count(*) AS n FROM r.blobs") == [{"n": 203}]
    # What the prune after the restore leaves says the same.
    (after,) = await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    assert after["is_valid"] is True, after["errors"]
