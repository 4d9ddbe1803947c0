"""An archive's folder written into by someone else: a file that is not a
segment (among them a copy of one named with non-ASCII digits, which once
parsed as the segment it copies) or a segment overlapping another. VERIFY
ARCHIVE calls the archive invalid, so a RESTORE to a time in it is refused
too (422 BACKUP_INVALID naming the file, nothing installed). Before, the
RESTORE went ahead past what VERIFY had called invalid."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from storage.archive import segment
from tests.helpers import rows

from .test_archiving import segment_files
from .test_crafted_changes import archived, as_changes, verify_and_restore


def arabic_digits(name: str) -> str:
    return "".join(chr(0x660 + int(c)) if c.isdigit() else c for c in name)


def plant_overlap(path: Path) -> Path:
    """A valid segment (checksums and all) holding only the first change of
    the segment at `path`, named for that shorter range: it overlaps it."""
    name = segment.parse_name(path.name)
    assert name is not None
    aid = path.parent.name
    _, entries = segment.decode(path.read_bytes(), "app", aid, name)
    first = as_changes(entries)[0]
    short = segment.SegmentName(name.after_lsn, first.lsn, name.after_us, first.at_us)
    assert short != name
    out = path.with_name(short.file)
    out.write_bytes(segment.encode("app", aid, short, [first], True, None, version=1))
    return out


PLANTS = {
    "digits": lambda seg: shutil.copyfile(seg, seg.with_name(arabic_digits(seg.name))),
    "newline": lambda seg: shutil.copyfile(seg, seg.with_name(seg.name + "\n")),
    "other_file": lambda seg: seg.with_name("notes.txt").write_text("hello"),
    "overlap": plant_overlap,
}


@pytest.mark.parametrize("case", sorted(PLANTS))
async def test_verify_and_restore_agree(client: Any, cairn_config: Config, case: str) -> None:
    end = await archived(client)
    target = Path(cairn_config.backup_roots[0]) / "arch"
    segs = segment_files(target.parent, target.name)
    names = [(s, segment.parse_name(s.name)) for s in segs]
    with_changes = [s for s, name in names if name is not None and not name.empty]
    before = set((target / "archives" / "app").rglob("*"))
    PLANTS[case](with_changes[0])
    planted = set((target / "archives" / "app").rglob("*")) - before
    assert len(planted) == 1

    report, status, body = await verify_and_restore(client, end, "copy")
    assert report["is_valid"] is False, report
    assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
    assert any(body["error"]["message"] in e for e in report["errors"]), (report, body)
    assert not await rows(client, "SELECT * FROM system.namespaces WHERE namespace = 'copy'")

    # the planted file alone made both refuse
    planted.pop().unlink()
    report, status, body = await verify_and_restore(client, end, "copy")
    assert report["is_valid"] is True, report
    assert status == 200, body
    assert await rows(client, "SELECT id, v FROM copy.t ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
