"""KILL JOB of the new job kinds (BACKUP ALL, RESTORE ALL, BACKUP TABLE,
RESTORE TABLE) placed exactly with fault-point gates: the job ends cancelled,
the client gets CANCELLED, and nothing is left half-done (no manifest, no
stray file, the replaced namespaces or table unchanged)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from server import faults
from tests.e2e.test_kill import kill, namespace_state
from tests.helpers import Gate, ok, sql, state, target_files

SETUP = (
    "CREATE NAMESPACE a; CREATE NAMESPACE b; "
    "CREATE TABLE a.t (id BIGINT PRIMARY KEY, v TEXT); "
    "CREATE TABLE b.t (id BIGINT PRIMARY KEY, v TEXT); "
    "INSERT INTO a.t VALUES (1, 'a1'); FLUSH TABLE a.t; INSERT INTO a.t VALUES (2, 'a2'); "
    "INSERT INTO b.t VALUES (1, 'b1'); FLUSH TABLE b.t; INSERT INTO b.t VALUES (2, 'b2')"
)


@pytest.mark.parametrize("text", ["BACKUP ALL TO 'fresh'", "BACKUP TABLE a.t TO 'fresh'"])
async def test_a_killed_backup_of_the_new_scopes_leaves_nothing(
    client: Any, tmp_path: Path, text: str
) -> None:
    await ok(client, SETUP)
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    waiting = asyncio.create_task(sql(client, text))
    info = await gate.reach()
    assert await kill(client, info["job_id"]) < 1.0
    status, body = await waiting
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    fresh = target_files(tmp_path / "backups" / "fresh")
    assert all(not part for part in fresh.values()), fresh
    assert (await ok(client, "SELECT count(*) AS n FROM system.backups"))[0]["rows"] == [{"n": 0}]


@pytest.mark.parametrize("text", [
    "RESTORE ALL FROM 'nightly' WITH (replace = true)",
    "RESTORE TABLE a.t FROM 'nightly' WITH (replace = true)",
])
async def test_a_killed_restore_of_the_new_scopes_leaves_no_trace(
    client: Any, tmp_path: Path, text: str
) -> None:
    await ok(client, SETUP)
    await ok(client, "BACKUP ALL TO 'nightly'")
    await ok(client, "INSERT INTO a.t VALUES (3, 'only now'); INSERT INTO b.t VALUES (3, 'now')")
    before = await namespace_state(client, tmp_path)
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("restore.before_object", gate)
    waiting = asyncio.create_task(sql(client, text))
    info = await gate.reach()
    assert await kill(client, info["job_id"]) < 1.0
    status, body = await waiting
    assert status == 409 and body["error"]["code"] == "CANCELLED", body
    assert await namespace_state(client, tmp_path) == before
    for ns in ("a", "b"):
        got = (await ok(client, f"SELECT v FROM {ns}.t WHERE id = 3"))[0]["rows"]
        assert len(got) == 1, (ns, got)
