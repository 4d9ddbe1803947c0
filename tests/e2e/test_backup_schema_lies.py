"""A manifest re-sealed to say a column is NOT NULL when its files hold
NULLs in it: VERIFY called the backup valid and RESTORE installed a NOT NULL
column holding NULLs (found by trying, as an attacker who can write the
target). Now both refuse it, from the files' footers, and nothing is
restored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import ok, reseal, rows

from .test_backup_crypto_hostile import error_of
from .test_backup_restore import backup


async def test_a_column_resealed_not_null_over_its_nulls_is_refused(
        client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT);"
                     "INSERT INTO app.t VALUES (1, NULL), (2, 'b'); FLUSH TABLE app.t;"
                     "INSERT INTO app.t VALUES (3, NULL)")
    done = await backup(client, "BACKUP DATABASE app TO 'r' WITH (compression = 'none')")

    def not_null(doc: dict[str, Any]) -> None:
        for table in doc["tables"]:
            for version in table["schemas"]:
                for c in version["columns"]:
                    if c["name"] == "name":
                        c["not_null"] = True

    reseal(tmp_path / "backups" / "r" / "manifests" / f"{done['backup_id']}.json", not_null)

    row = await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'r'")
    assert row["is_valid"] is False
    assert "NULL values in column 'name', NOT NULL" in json.dumps(row["errors"]), row
    err = await error_of(client, f"RESTORE DATABASE app FROM 'r' AS copy WITH "
                                 f"(backup_id = '{done['backup_id']}')")
    assert err["code"] == "BACKUP_INVALID" and "NOT NULL" in err["message"], err
    names = [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")]
    assert "copy" not in names
    # The same backup as written (nothing re-sealed) verifies and restores.
    fresh = await backup(client, "BACKUP DATABASE app TO 'r2'")
    assert (await backup(client, f"VERIFY BACKUP '{fresh['backup_id']}' IN 'r2'"))["is_valid"]
    await ok(client, "RESTORE DATABASE app FROM 'r2' AS copy")
    assert await rows(client, "SELECT id, name FROM copy.t ORDER BY id") == [
        {"id": 1, "name": None}, {"id": 2, "name": "b"}, {"id": 3, "name": None}]
