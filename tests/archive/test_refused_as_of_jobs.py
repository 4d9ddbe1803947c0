"""A RESTORE DATABASE `as_of` refused for the time (before every base, past
the newest restorable time, an archive whose folder holds a stray file) is a
`failed` restore job in system.jobs, as the same refusals without `as_of` and
RESTORE TABLE's are (docs/sql.md Jobs: every RESTORE run is a job). Before,
the time was planned before the job existed: the error came back and no row
said a restore had been tried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.config import Config
from tests.helpers import err, rows, wait_job

from .test_archiving import archive_two_rows
from .test_restore_time import iso_now


async def _jobs(client: Any, statement: str) -> list[dict[str, Any]]:
    quoted = statement.replace("'", "''")
    return await rows(client, "SELECT status, error_message, namespace FROM system.jobs "
                              f"WHERE job_type = 'restore' AND statement = '{quoted}'")


async def test_a_refused_restore_to_a_time_is_a_failed_job(
        client: Any, cairn_config: Config) -> None:
    before = iso_now()  # before START ARCHIVING's base
    await archive_two_rows(client)
    [window] = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    [folder] = (Path(cairn_config.backup_roots[0]) / "arch" / "archives" / "app").iterdir()
    cases = [(f"RESTORE DATABASE app FROM 'arch' AS a1 WITH (as_of = '{before}')", "NOT_FOUND"),
             ("RESTORE DATABASE app FROM 'arch' AS a2 WITH (as_of = '9999-01-01')",
              "INVALID_ARGUMENT"),
             (f"RESTORE DATABASE app FROM 'arch' AS a3 WITH (as_of = "
              f"'{window['end_time']}')", "BACKUP_INVALID")]
    for statement, code in cases:
        if code == "BACKUP_INVALID":
            (folder / "stray.txt").write_text("x")
        message = await err(client, statement, code)
        jobs = await _jobs(client, statement)
        assert [(j["status"], j["error_message"]) for j in jobs] == [("failed", message)], jobs
    # Detached: the job is answered, and fails on the time.
    statement = (f"RESTORE DATABASE app FROM 'arch' AS a4 WITH (as_of = "
                 f"'{window['end_time']}', detached = true)")
    [started] = await rows(client, statement)
    done = await wait_job(client, started["job_id"], timeout=60)
    assert done["status"] == "failed" and "stray.txt" in done["error_message"], done
    names = {r["namespace"] for r in await rows(client, "SHOW NAMESPACES")}
    assert not names & {"a1", "a2", "a3", "a4"}, names
