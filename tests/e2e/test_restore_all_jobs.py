"""A RESTORE ALL refused for its backup set (a member's manifest removed or
replaced, no set at all) is a `failed` restore job in system.jobs, as RESTORE
DATABASE refused for the same damage is: it left no row (docs/sql.md Jobs:
every RESTORE run is a job). A destination that exists without `replace` is
refused before any job, as RESTORE DATABASE's is."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.helpers import err, ok, rows, wait_job


async def restore_jobs(client: Any) -> list[dict[str, Any]]:
    return await rows(client, "SELECT job_id, status, backup_id, error_message FROM "
                              "system.jobs WHERE job_type = 'restore' ORDER BY created_at")


async def test_a_restore_all_refused_for_its_set_is_a_failed_job(
    client: Any, tmp_path: Path
) -> None:
    await ok(client, "CREATE NAMESPACE p; CREATE TABLE p.t (id BIGINT); "
                     "CREATE NAMESPACE s; CREATE TABLE s.t (id BIGINT); INSERT INTO p.t VALUES (1)")
    await ok(client, "BACKUP DATABASE p TO 'tg'")
    await err(client, "RESTORE ALL FROM 'tg' WITH (replace = true)", "NOT_FOUND")  # no set
    members = await rows(client, "BACKUP DATABASE p, s TO 'tg'")
    set_id = members[0]["backup_id"].rsplit(".", 1)[0]
    # Whole, but p and s exist: refused before any job, as RESTORE DATABASE is.
    await err(client, "RESTORE ALL FROM 'tg'", "ALREADY_EXISTS")
    assert [j["status"] for j in await restore_jobs(client)] == ["failed"]

    manifests = tmp_path / "backups" / "tg" / "manifests"
    (manifests / f"{set_id}.p.json").unlink()
    messages = [await err(client, "RESTORE ALL FROM 'tg' WITH (replace = true)",
                          "BACKUP_INVALID"),
                await err(client, f"RESTORE ALL FROM 'tg' WITH (backup_id = '{set_id}', "
                                  "replace = true)", "BACKUP_INVALID")]
    shutil.copyfile(manifests / f"{set_id}.s.json", manifests / f"{set_id}.p.json")
    messages.append(await err(client, f"RESTORE ALL FROM 'tg' WITH (backup_id = '{set_id}', "
                                      "replace = true)", "BACKUP_INVALID"))
    (started,) = await rows(client, "RESTORE ALL FROM 'tg' WITH (replace = true, "
                                    "detached = true)")
    assert (await wait_job(client, started["job_id"]))["status"] == "failed"
    jobs = await restore_jobs(client)
    assert [j["status"] for j in jobs] == ["failed"] * 5, jobs
    assert "no backup set" in jobs[0]["error_message"]
    assert [j["error_message"] for j in jobs[1:4]] == messages
    # As RESTORE DATABASE refused for the same damage.
    await err(client, f"RESTORE DATABASE p FROM 'tg' AS x WITH (backup_id = '{set_id}.p')",
              "BACKUP_INVALID")
    assert [j["status"] for j in await restore_jobs(client)] == ["failed"] * 6
    assert await rows(client, "SELECT count(*) AS n FROM p.t") == [{"n": 1}]
