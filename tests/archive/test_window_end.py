"""A window that ends mid-millisecond (a backlog ships in pieces of about
16 MiB, each ending at its last change; a target that breaks after one piece
leaves it the window's end) is shown with its microseconds: a RESTORE as_of
the shown end_time holds every change of the window, and a later time is
refused naming that end.

Before, the end was floored to the millisecond: SHOW RESTORE POINTS showed
…22.620Z for a window ending at …22.620307Z, a restore as_of it missed the
last change, and as_of …22.620999Z was refused as "after the newest
restorable time … 22.620Z", a time earlier than one that restores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.config import Config
from storage.archive import segment
from storage.archive.changes import Change
from storage.archive.segment import SegmentName
from storage.archive.store import iso_exact
from tests.helpers import err, ok, rows

from .test_archiving import FAST, segment_files, wait_shipped
from .test_crafted_changes import as_changes


def end_at_last_change(target: Path) -> int:
    """The archive cut as a backlog's first piece leaves it: its newest
    segment holding changes rewritten to end at its last change (not a whole
    millisecond), every later (empty) segment gone. The new end."""
    files = segment_files(target.parent, target.name)
    decoded = []
    for path in files:
        name = segment.parse_name(path.name)
        assert name is not None
        decoded.append((path, name, segment.decode(path.read_bytes(), "app",
                                                   path.parent.name, name)))
    last = max(i for i, (_, name, _) in enumerate(decoded) if not name.empty)
    for path, _, _ in decoded[last + 1:]:
        path.unlink()
    path, name, (header, entries) = decoded[last]
    changes = as_changes(entries)
    if changes[-1].at_us % 1000 == 0:  # (one time in 1000) make it mid-millisecond
        c = changes[-1]
        changes[-1] = Change(c.lsn, c.at_us + 1, c.kind, c.table, c.data)
    end = changes[-1].at_us
    assert end <= name.through_us
    cut = SegmentName(name.after_lsn, name.last_lsn, name.after_us, end)
    path.unlink()
    (path.parent / cut.file).write_bytes(segment.encode(
        "app", path.parent.name, cut, changes, header.codec.startswith("zstd"), None, version=1))
    return end


async def test_a_window_ending_mid_millisecond_shows_its_microseconds(
        client: Any, cairn_config: Config) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    end = end_at_last_change(Path(cairn_config.backup_roots[0]) / "arch")
    [point] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert point["end_time"] == iso_exact(end), (point, end)
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    assert report["windows"][0]["end_time"] == point["end_time"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{point['end_time']}')")
    assert await rows(client, "SELECT id FROM r.t ORDER BY id") == [{"id": 1}, {"id": 2}]
    later = iso_exact(end + 1)
    message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS r2 "
                                f"WITH (as_of = '{later}')", "INVALID_ARGUMENT")
    assert message.endswith(f"newest restorable time of namespace 'app', {iso_exact(end)}"), \
        message
