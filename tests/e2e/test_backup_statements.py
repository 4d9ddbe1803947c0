"""What backup statements answer at the edges the docs promise: DROP BACKUP
IF EXISTS with and without IN, `detached` on every backup statement, RESTORE
TABLE of a table no backup holds, and options that contradict the statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import ok, rows

MISSING = "bk-does-not-exist"


async def app_backup(client: Any, target: str = "nightly") -> dict[str, Any]:
    await ok(client, "CREATE NAMESPACE IF NOT EXISTS app; "
                     "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY); "
                     "INSERT INTO app.t VALUES (1)")
    return (await ok(client, f"BACKUP DATABASE app TO '{target}'"))[0]["rows"][0]


async def drop_jobs(client: Any) -> list[dict[str, Any]]:
    return await rows(client, "SELECT status, result FROM system.jobs "
                              "WHERE job_type = 'drop_backup' ORDER BY job_id")


# --- DROP BACKUP IF EXISTS ------------------------------------------------------


async def test_drop_backup_if_exists_skips_a_missing_backup_with_or_without_in(
    client: Any, tmp_path: Path
) -> None:
    """With IN it said "dropped" and recorded a completed job claiming so."""
    await app_backup(client)
    for where in ("", " IN 'nightly'", " IN 'never_written'"):
        [result] = await ok(client, f"DROP BACKUP IF EXISTS '{MISSING}'{where}")
        assert result["rows"] == [], where
        assert result["message"] == f"Backup '{MISSING}' does not exist, skipped", where
    assert await drop_jobs(client) == []
    assert not (tmp_path / "backups" / "never_written").exists()
