"""A damaged manifest's namespace and times come from its own bytes only when
they name the backup of the file's name: a copy of another backup's manifest
vouches for that other backup (its times made the newest backup count as an
older one: tests/e2e/test_manifest_not_its_own.py), and this server's record
of the id, when it has one, wins over the bytes."""

from __future__ import annotations

from storage.backup.manifest import canonical, checksum
from storage.backup.recorded import Fixed, judged
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
