"""A server killed in a BACKUP before its manifest landed, a manifest under
the job's backup_id in the target by the restart (anyone who can write the
target can plant one: the id is in system.jobs and names the job's lock).
Start-up took any manifest there for the job's own, landed before the
crash, and listed it: a copy of an older backup of the namespace, re-sealed
with the job's id, became a backup of the namespace as of the job, its rows
the older ones. Now a manifest not of the job's namespace, or taken before
the job was created, is not its own: it goes, and the job is what a crash
before the manifest leaves."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.helpers import reseal, target_files

from .test_kill import config_file, died, post_ok


def test_a_manifest_planted_under_a_crashed_backups_id_is_not_listed(
        tmp_path: Path, server_process: Any) -> None:
    config = config_file(tmp_path)
    # An empty table: its backup has no object, so only the second meets the fault.
    srv = server_process(config=config, env={"CAIRN_FAULTS": "backup.before_object:kill"})
    post_ok(srv, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT)")
    b0 = post_ok(srv, "BACKUP DATABASE app TO 'bk' WITH (compression = 'none')")[
        "rows"][0]["backup_id"]
    post_ok(srv, "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")
    srv.post("BACKUP DATABASE app TO 'bk' WITH (compression = 'none', detached = true)")
    died(srv)
    target = tmp_path / "backups" / "bk"
    (lock,) = target_files(target)["locks"]
    crashed = lock.removesuffix(".json")
    planted = target / "manifests" / f"{crashed}.json"
    shutil.copyfile(target / "manifests" / f"{b0}.json", planted)
    reseal(planted, lambda d: d.update(backup_id=crashed))

    again = server_process(config=config)
    listed = {r["backup_id"] for r in post_ok(again, "SHOW BACKUPS")["rows"]}
    assert listed == {b0}, listed
    assert target_files(target)["manifests"] == {b0}
    job = post_ok(again, "SELECT status, error_message FROM system.jobs WHERE "
                         f"backup_id = '{crashed}'")["rows"]
    assert [j["status"] for j in job] == ["failed"], job
    assert "the backup is valid" not in job[0]["error_message"], job
