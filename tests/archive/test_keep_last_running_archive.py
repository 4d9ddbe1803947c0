"""A BACKUP … WITH (keep_last = 1) into the target of a running archive drops
its START base; the new backup is a base of the same archive, and the prune
keeps the archive's newest segment (archiving resumes after it). When that
segment holds the dropped base's cut (every change since START fits in one),
it is what keep_last leaves until the next prune, not changes lost.

Before, VERIFY ARCHIVE was INVALID and SHOW RESTORE POINTS showed an error row
("no base backup of its changes … is in the target (removed, or its manifest
replaced): they cannot be restored") until the next drop's prune: the check
looked for a base of the run holding the catalog's base cut, and the newer
base, taken after the segment ended, is none."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from catalog.errors import Unavailable
from server import faults
from tests.helpers import fill, ok, rows

from .test_archiving import FAST, wait_shipped


async def test_keep_last_into_a_running_archive_leaves_it_valid(
        client: Any, tmp_path: Path) -> None:
    await fill(client, files=2)
    # The INSERT must be in the base's first segment, which goes at once: its
    # first cycle is held until the INSERT has committed, then fails (nothing
    # written), and the next ships both (before, the first cycle and the
    # INSERT raced: an empty first segment, then a second).
    inserted = threading.Event()
    held: list[bool] = []

    def hold_first(info: dict[str, Any]) -> None:
        if not held:
            held.append(True)
            inserted.wait(60)
            raise Unavailable("the first cycle waits for the INSERT")

    faults.register("archive.before_segment", hold_first)
    try:
        await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
        await ok(client, "INSERT INTO app.blobs VALUES (100000, 'a'), (100001, 'b')")
        inserted.set()
        await wait_shipped(client)
    finally:
        inserted.set()
        faults.clear()
    assert held and len(list((tmp_path / "backups" / "arch" / "archives").rglob("*.seg"))) == 1
    (backup,) = await rows(client, "BACKUP DATABASE app TO 'arch' WITH (keep_last = 1)")
    assert backup["status"] == "completed"
    (v,) = await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    assert v["is_valid"] is True and v["errors"] == [], v
    shown = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert [p["error"] for p in shown if p["error"]] == []
    # Archiving goes on from the new base: a change after it restores to its time.
    await ok(client, "INSERT INTO app.blobs VALUES (100002, 'c')")
    await wait_shipped(client)
    (point,) = [p for p in await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
                if p["error"] is None]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{point['end_time']}')")
    assert await rows(client, "SELECT count(*) AS n FROM r.blobs") == [{"n": 203}]
    (v,) = await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'")
    assert v["is_valid"] is True, v["errors"]
