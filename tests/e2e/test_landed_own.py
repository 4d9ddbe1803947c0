"""Start-up's recovery of a BACKUP (or backup set) whose server died after
the job's snapshot: a manifest under the job's id is listed as its backup
only when it is the job's own. Checked by the namespace and `snapshot_at >=
the job's created_at` (round 24), a copy of an older backup re-sealed with
the id and any later snapshot_at passed; a backup set was listed with no
check at all. The row below is the job's row as a crash leaves it on disk
(read while the job ran), the target as a crash after the manifest leaves
it; the clean-up is the one start-up runs (server/recovery.py)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from catalog import Backup, Job
from server import faults, recovery
from tests.helpers import ok, reseal, rows, state


def _capture(client: Any, point: str) -> list[Job]:
    seen: list[Job] = []

    def grab(info: dict[str, Any]) -> None:
        cairn = state(client)
        (job,) = [j for j in cairn.jobs.live() if j.job_type == "backup"]
        seen.append(copy.deepcopy(cairn.catalog.get(Job, job.job_id)))

    faults.register(point, grab)
    return seen


async def _recover(client: Any, row: Job, records: list[str]) -> Job:
    """The job's row as the crash left it, its backups' records not written
    yet: start-up's clean-up of it."""
    cairn = state(client)
    for b in records:
        cairn.catalog.delete(Backup, b)
    row.status, row.error_message = "failed", recovery.INTERRUPTED
    recovery.clean(cairn.jobs, row)
    return row


async def test_an_older_backup_resealed_with_a_later_time_is_not_listed(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT); "
                     "INSERT INTO app.t VALUES (1); FLUSH TABLE app.t")
    b0 = (await rows(client, "BACKUP DATABASE app TO 'bk' WITH (compression = 'none')"))[0][
        "backup_id"]
    await ok(client, "INSERT INTO app.t VALUES (2); FLUSH TABLE app.t")
    seen = _capture(client, "backup.before_manifest")
    b1 = (await rows(client, "BACKUP DATABASE app TO 'bk' WITH (compression = 'none')"))[0][
        "backup_id"]
    faults.clear()
    manifests = tmp_path / "backups" / "bk" / "manifests"
    # b0's rows under b1's id, taken "now": after the job was created.
    shutil.copyfile(manifests / f"{b0}.json", manifests / f"{b1}.json")
    reseal(manifests / f"{b1}.json", lambda d: d.update(
        backup_id=b1, snapshot_at="2099-01-01T00:00:00.000Z"))
    job = await _recover(client, seen[0], [b1])
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    assert listed == {b0}, (listed, job.error_message)
    assert not (manifests / f"{b1}.json").exists()
    assert "the backup is valid" not in (job.error_message or "")


async def test_a_set_with_a_member_planted_is_not_listed(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE a; CREATE TABLE a.t (id BIGINT); "
                     "CREATE NAMESPACE b; CREATE TABLE b.t (id BIGINT); "
                     "INSERT INTO a.t VALUES (1); INSERT INTO b.t VALUES (1)")
    s0 = (await rows(client, "BACKUP DATABASE a, b TO 'bk' WITH (compression = 'none')"))[0][
        "backup_id"].rsplit(".", 1)[0]
    await ok(client, "INSERT INTO a.t VALUES (2); INSERT INTO b.t VALUES (2)")
    seen = _capture(client, "backup.between_manifests")
    got = await rows(client, "BACKUP DATABASE a, b TO 'bk' WITH (compression = 'none')")
    faults.clear()
    s1 = got[0]["backup_id"].rsplit(".", 1)[0]
    manifests = tmp_path / "backups" / "bk" / "manifests"
    # The server died between a's member and b's; b's planted: the older set's.
    shutil.copyfile(manifests / f"{s0}.b.json", manifests / f"{s1}.b.json")

    def member(d: dict[str, Any]) -> None:
        d.update(backup_id=f"{s1}.b", snapshot_at="2099-01-01T00:00:00.000Z")
        d["scope"]["set_id"] = s1

    reseal(manifests / f"{s1}.b.json", member)
    job = await _recover(client, seen[0], [f"{s1}.a", f"{s1}.b"])
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    assert listed == {f"{s0}.a", f"{s0}.b"}, (listed, job.error_message)
    assert "valid" not in (job.error_message or "")


async def test_its_own_manifest_is_listed_whatever_the_wall_clock_did(
        client: Any, tmp_path: Path) -> None:
    """The wall clock stepped back between the job's creation and its
    snapshot (its snapshot_at before its created_at): its own manifest, landed
    before the crash, was removed as not its own, a whole backup lost. A
    backup set that landed whole is listed (BACKUP ALL: its namespaces in any
    order)."""
    await ok(client, "CREATE NAMESPACE b; CREATE TABLE b.t (id BIGINT); "
                     "CREATE NAMESPACE a; CREATE TABLE a.t (id BIGINT); "
                     "INSERT INTO a.t VALUES (1); INSERT INTO b.t VALUES (1)")
    seen = _capture(client, "backup.before_manifest")
    b1 = (await rows(client, "BACKUP DATABASE a TO 'bk'"))[0]["backup_id"]
    s1 = (await rows(client, "BACKUP ALL TO 'bk'"))[0]["backup_id"].rsplit(".", 1)[0]
    faults.clear()
    seen[0].created_at = "2099-01-01T00:00:00.000Z"
    job = await _recover(client, seen[0], [b1])
    assert "the backup is valid" in (job.error_message or ""), job.error_message
    job = await _recover(client, seen[1], [f"{s1}.a", f"{s1}.b"])
    assert "the backups are valid" in (job.error_message or ""), job.error_message
    listed = {r["backup_id"] for r in await rows(client, "SHOW BACKUPS")}
    assert listed == {b1, f"{s1}.a", f"{s1}.b"}, listed
