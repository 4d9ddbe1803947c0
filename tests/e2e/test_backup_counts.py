"""Honest counts: a backup's `rows` are the rows a query saw at its snapshot
(live rows), `row_versions` what it stores (every UPDATE and DELETE adds a
version), in BACKUP's and RESTORE's results, SHOW BACKUP(S) and system.backups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from tests.helpers import ok, sql

SETUP = (
    "CREATE NAMESPACE app; "
    "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
    "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT); "
    "CREATE TABLE app.log (v TEXT)"
)


async def test_three_live_rows_and_one_update_are_three_rows_and_four_versions(
    client: Any, tmp_path: Path
) -> None:
    await ok(client, SETUP)
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    await ok(client, "FLUSH TABLE app.t")
    await ok(client, "UPDATE app.t SET v = 'B' WHERE id = 2")  # buffered: a 4th version
    b = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]
    assert b["columns"] == ["job_id", "backup_id", "namespace", "target", "status", "tables",
                            "rows", "files", "bytes", "bytes_written", "row_versions"]
    row = b["rows"][0]
    assert (row["rows"], row["row_versions"]) == (3, 4)

    listed = (await ok(client, "SHOW BACKUPS"))[0]
    assert (listed["rows"][0]["rows"], listed["rows"][0]["row_versions"]) == (3, 4)
    inside = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"][0]
    assert (inside["rows"], inside["row_versions"]) == (3, 4)
    system = (await ok(client, "SELECT rows, row_versions FROM system.backups"))[0]["rows"]
    assert system == [{"rows": 3, "row_versions": 4}]
    per_table = {r["table_name"]: r for r in
                 (await ok(client, f"SHOW BACKUP '{row['backup_id']}'"))[0]["rows"]}
    assert (per_table["t"]["rows"], per_table["t"]["row_versions"]) == (3, 4)

    restored = (await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy"))[0]["rows"][0]
    assert (restored["rows"], restored["row_versions"]) == (3, 4)


async def test_deletes_and_users_keys_count_apart(client: Any) -> None:
    await ok(client, SETUP)
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
    await ok(client, "DELETE FROM app.t WHERE id = 1")  # soft: stored, not live
    await ok(client, "INSERT INTO app.t VALUES (1, 'again')")  # live again: 3 versions of key 1
    for user in ("alice", "bob"):  # the same key, two users: two live rows
        await ok(client, "INSERT INTO app.u VALUES (7, 'x')", user=user)
    await ok(client, "INSERT INTO app.log VALUES ('one'), ('two')")
    await ok(client, "FLUSH ALL TABLES IN app")
    await ok(client, "DELETE FROM app.log WHERE v = 'one'")
    row = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    tables = {r["table_name"]: (r["rows"], r["row_versions"]) for r in
              (await ok(client, f"SHOW BACKUP '{row['backup_id']}'"))[0]["rows"]}
    assert tables == {"t": (2, 4), "u": (2, 2), "log": (1, 3)}
    assert (row["rows"], row["row_versions"]) == (5, 9)


async def test_a_catalog_record_from_before_row_versions_reads_as_versions(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    from catalog import Backup

    raw = json.dumps({"backup_id": "bk-old", "namespace": "app", "target": "t",
                      "created_at": "2026-01-01T00:00:00Z", "snapshot_at": "2026-01-01T00:00:00Z",
                      "rows": 4}).encode()
    record = Backup.loads(raw)
    assert (record.rows, record.row_versions) == (None, 4)
    client = await aiohttp_client(create_app(cairn_config))
    status, body = await sql(client, "SELECT rows, row_versions FROM system.backups")
    assert status == 200 and body["results"][0]["rows"] == []
