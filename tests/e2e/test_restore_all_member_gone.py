"""A RESTORE ALL whose chosen backup set loses a member (dropped by another
server sharing the target, or by a DROP BACKUP) between the choice and its
job's start answered 404 NOT_FOUND "backup '<set>.<ns>' does not exist",
naming a member the user never named (a retry then said BACKUP_INVALID, the
set incomplete). Now the answer names the set, as the retry's does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from tests.helpers import Gate, err, ok, rows, sql, state


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.max_concurrent = 1  # the restore's job waits behind a parked one
    cairn_config.jobs.job_process = "off"
    return cairn_config


@pytest.mark.parametrize("lost", ["p", "both"])
async def test_a_set_losing_a_member_as_restore_all_starts_is_named(
        client: Any, tmp_path: Path, lost: str) -> None:
    await ok(client, "CREATE NAMESPACE p; CREATE TABLE p.t (id BIGINT); "
                     "CREATE NAMESPACE s; CREATE TABLE s.t (id BIGINT); INSERT INTO p.t VALUES (1)")
    set_id = (await rows(client, "BACKUP DATABASE p, s TO 'tg'"))[0]["backup_id"].rsplit(".", 1)[0]
    gate = Gate(state(client))
    faults.register("backup.snapshot_taken", gate)
    parked = asyncio.create_task(sql(client, "BACKUP DATABASE s TO 'other'"))
    await gate.reach()
    restore = asyncio.create_task(sql(client, "RESTORE ALL FROM 'tg' WITH (replace = true)"))
    while not await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'restore'"):
        await asyncio.sleep(0.02)
    manifests = tmp_path / "backups" / "tg" / "manifests"
    for ns in ["p", "s"] if lost == "both" else [lost]:
        (manifests / f"{set_id}.{ns}.json").unlink()  # another server's drop
    gate.opened.set()
    assert (await parked)[0] == 200
    status, body = await restore
    faults.clear()
    code = "NOT_FOUND" if lost == "both" else "BACKUP_INVALID"
    assert status in (404, 422) and body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert f"backup set '{set_id}'" in message and "nothing was restored" in message, message
    assert await rows(client, "SELECT id FROM p.t") == [{"id": 1}]
    if lost != "both":  # a retry says the same
        await err(client, "RESTORE ALL FROM 'tg' WITH (replace = true)", "BACKUP_INVALID")
