"""VERIFY BACKUP of a backup a DROP BACKUP removes while it reads.

The VERIFY looked for the drop only when its report came out invalid (objects
missing): one whose objects were all read before the drop freed them ended
`completed`, is_valid = true, for a backup the target no longer held, while a
RESTORE of it right after was NOT_FOUND. Now a VERIFY looks at the target once
it has read every object, valid or not: a backup dropped before its answer is
NOT_FOUND, as the RESTORE says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server import faults
from tests.helpers import Gate, err, fill, rows, state, target_files, wait_job


async def test_a_backup_dropped_after_verify_read_it_is_not_found_not_valid(
        client: Any, tmp_path: Path) -> None:
    await fill(client, files=2)
    target = tmp_path / "backups" / "nightly"
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    backup_id = b["backup_id"]
    gate = Gate(state(client))
    faults.register("verify.after_read", gate)
    (v,) = await rows(client, f"VERIFY BACKUP '{backup_id}' IN 'nightly' "
                              "WITH (detached = true)")
    await gate.reach()  # every object read, the report valid
    (dropped,) = await rows(client, f"DROP BACKUP '{backup_id}' IN 'nightly'")
    assert dropped["bytes_freed"] > 0
    assert target_files(target)["manifests"] == set()
    gate.opened.set()
    job = await wait_job(client, v["job_id"])
    assert job["status"] == "failed", job
    assert job["error_message"] == (f"backup '{backup_id}' was dropped from target "
                                    f"'{target}' while it was being verified")
    # VERIFY and RESTORE agree
    await err(client, f"RESTORE DATABASE app FROM 'nightly' AS r WITH (backup_id = "
                      f"'{backup_id}')", "NOT_FOUND")


async def test_a_backup_still_there_after_verify_read_it_is_valid(
        client: Any, tmp_path: Path) -> None:
    """The look after the read does not turn a held backup into anything else."""
    await fill(client, files=2)
    (b,) = await rows(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate.signal()
    faults.register("verify.after_read", gate)
    (v,) = await rows(client, f"VERIFY BACKUP '{b['backup_id']}' IN 'nightly'")
    assert gate.reached.is_set()
    assert v["is_valid"] is True and v["files_checked"] > 0, v
