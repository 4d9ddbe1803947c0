"""A damaged manifest's namespace and times come from its own bytes only when
they name the backup of the file's name: a copy of another backup's manifest
vouches for that other backup (its times made the newest backup count as an
older one: tests/e2e/test_manifest_not_its_own.py), and this server's record
of the id, when it has one, wins over the bytes."""

from __future__ import annotations

import json

from storage.backup.manifest import canonical, checksum
from storage.backup.recorded import Fixed, judged
from storage.backup.records import JSON_DENSITY, JSON_DENSITY_SLACK
from storage.backup.selection import hints

DOC = {"backup_id": "bk-old", "namespace": "b", "created_at": "2026-01-01T00:00:00.000Z",
       "snapshot_at": "2026-01-01T00:00:00.000Z"}
DATA = canonical({**DOC, "manifest_sha256": checksum(DOC)}) + b"\n"


def test_a_copy_vouches_for_nothing_of_the_backup_whose_name_it_took() -> None:
    assert hints(DATA, "bk-old") == {k: DOC[k] for k in ("namespace", "created_at",
                                                          "snapshot_at")}
    assert hints(DATA, "bk-new") == {}


def test_the_record_wins_over_the_bytes() -> None:
    record = {"namespace": "a", "created_at": "2026-06-01T00:00:00.000Z",
              "snapshot_at": "2026-06-01T00:00:00.000Z", "scope": "database", "server": None}
    bad = [{"backup_id": "bk-new", "error": "it names backup 'bk-old'", "namespace": "b",
            "created_at": DOC["created_at"], "snapshot_at": DOC["snapshot_at"]}]
    good, bad = judged(Fixed({"bk-new": record}), [], bad, "t")
    assert good == [] and bad == [{"backup_id": "bk-new", "error": "it names backup 'bk-old'",
                                   "namespace": "a", "created_at": record["created_at"],
                                   "snapshot_at": record["snapshot_at"]}]


def test_a_utf16_manifest_past_the_density_cap_is_not_parsed() -> None:
    """json.loads of bytes takes UTF-16, whose `\\"` the density check (bytes
    read as UTF-8) took for a string's end: every array after it counted as
    inside a string, and a 64 MiB damaged manifest of `[],` was parsed whole
    (0.8 GB, 3 s) for the hints of SHOW BACKUPS' damaged entry."""
    doc = {**DOC, "backup_id": "bk-x", "pad": ['"', *([[]] * 100_000), '"']}
    text = json.dumps({**doc, "manifest_sha256": checksum(doc)}, separators=(",", ":"))
    data = text.encode("utf-16-le")
    assert data.count(b"[") > len(data) // JSON_DENSITY + JSON_DENSITY_SLACK
    assert hints(data, "bk-x") == {}
