"""A CRON schedule stored by a release before the standard-cron reader, whose
expression that reader refuses ('0 0 1 * */2', '0 0 */2 * 1', '0 0 * * 1/2',
L / W / #), ran as croniter reads it: '0 0 1 * */2' four days a week instead
of the 1st of some months, and KEEP LAST pruned by those runs. It does not run
now; SHOW SCHEDULES and system.schedules say why and what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog import Schedule
from server import schedules
from server.app import CAIRN
from server.schedules import iso, run_due
from tests.helpers import idle_schedule_loop, ok, rows


@pytest.fixture(autouse=True)
def _own_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedules, "schedule_loop", idle_schedule_loop)


@pytest.mark.parametrize("expr", ["0 0 1 * */2", "0 0 */2 * 1", "0 0 * * 1/2", "0 0 L * *",
                                  "0 0 30 2 *"])  # no date: every pass failed on it
async def test_a_stored_cron_no_longer_accepted_does_not_run(client: Any, expr: str) -> None:
    await ok(client, "CREATE NAMESPACE app; "
                     "CREATE SCHEDULE good FOR BACKUP DATABASE app TO 'n' CRON '0 0 * * *'")
    cairn = client.server.app[CAIRN]
    now = datetime.now(UTC)
    # As an older release stored it: due now, a run of it recorded before.
    cairn.catalog.put(Schedule(
        name="old", namespace="app", target="n", every=None, every_seconds=0, keep_last=3,
        cron=expr, next_run_at=iso(now - timedelta(minutes=1)), last_job_id="j-gone",
        last_status="completed"))
    shown = {r["name"]: r for r in await rows(client, "SHOW SCHEDULES")}
    status = shown["old"]["last_status"]
    assert status.startswith("failed: the cron expression") and expr in status, status
    assert "no longer accepted" in status and "DROP SCHEDULE old and CREATE it again" in status
    assert shown["old"]["next_run_at"] is None and shown["good"]["last_status"] is None

    started = []
    for k in range(3):  # never started, however long the loop goes on
        started += await run_due(cairn, now + timedelta(days=40 * k))
    assert started and all(j.statement.endswith("-- schedule good") for j in started)
    stored = await rows(client, "SELECT name, next_run_at, last_status FROM system.schedules "
                                "WHERE name = 'old'")
    assert stored == [{"name": "old", "next_run_at": None, "last_status": status}]
    await ok(client, "DROP SCHEDULE old")
    assert [r["name"] for r in await rows(client, "SHOW SCHEDULES")] == ["good"]
