"""What a schedule stores is bounded, and the loop does not decode it every second.

`EVERY '<"0s" four million times>1d'` (8 MB) was taken, stored whole, echoed by
CREATE and every SHOW SCHEDULES, and decoded by the loop once a second: 12 such
schedules took an idle server from 0.02 s to ~2 s of CPU per 10 s. An interval
is now at most 64 characters (spaces aside), as a cron expression is at most
256; the loop decodes the records again only once one was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog import Schedule
from server import schedules
from server.schedules import iso, run_due
from tests.helpers import err, idle_schedule_loop, ok, rows, state, wait_job

CREATE = "CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '{}'"


@pytest.fixture(autouse=True)
def _own_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedules, "schedule_loop", idle_schedule_loop)


async def test_an_interval_over_64_characters_is_refused(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app")
    message = await err(client, CREATE.format("0s" * 40_000 + "1d"), "INVALID_ARGUMENT")
    assert message == "interval is 80,002 characters; at most 64"
    # Spaces do not count, and are not echoed back.
    message = await err(client, CREATE.format("1x" + " " * 100_000), "INVALID_ARGUMENT")
    assert "interval '1x' is not like" in message and len(message) < 200, message
    assert await err(client, CREATE.format("0" * 63 + "1d"), "INVALID_ARGUMENT") == (
        "interval is 65 characters; at most 64")
    assert await rows(client, "SHOW SCHEDULES") == []
    # 64 characters is taken, and stored without its spaces.
    longest = "0" * 62 + "1d"
    created = await ok(client, CREATE.format(" " * 1000 + longest + " " * 1000))
    assert f"every {longest}," in created[0]["message"]
    assert await rows(client, "SELECT every FROM system.schedules") == [{"every": longest}]


async def test_the_loop_decodes_the_schedules_again_only_once_one_is_written(
        client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT); "
                     "INSERT INTO app.t VALUES (1)")
    cairn = state(client)
    now = datetime.now(UTC)
    # As an older server stored it: a 1 MB interval, one day.
    old = Schedule(name="old", namespace="app", target=str(tmp_path / "backups" / "n"),
                   every="0s" * 500_000 + "1d", every_seconds=86400,
                   next_run_at=iso(now + timedelta(days=1)))
    cairn.catalog.put(old)
    await ok(client, "CREATE SCHEDULE a FOR BACKUP DATABASE app TO 'n' EVERY '1h'")
    now = datetime.now(UTC)  # (not before 'a' was made: its next run would be set back)
    decoded: list[bytes] = []
    real = Schedule.loads.__func__  # type: ignore[attr-defined]

    def loads(cls: type[Schedule], raw: bytes) -> Schedule:
        decoded.append(raw)
        return real(cls, raw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Schedule, "loads", classmethod(loads))

    async def one_pass(when: datetime) -> tuple[list[Any], int]:
        """The jobs a pass of the loop at `when` starts, and the records it decodes."""
        before = len(decoded)
        return await run_due(cairn, when), len(decoded) - before

    assert await one_pass(now) == ([], 2)
    for _ in range(4):  # nothing written since: nothing decoded
        assert await one_pass(now) == ([], 0)

    # Written since: read again, and what changed is seen.
    await ok(client, "DROP SCHEDULE a")
    assert await one_pass(now + timedelta(hours=2)) == ([], 1)  # 'a' would be due
    old.next_run_at = iso(now)
    cairn.catalog.put(old)
    (job,), read = await one_pass(now + timedelta(hours=2))
    assert read == 1 and job.statement.endswith("-- schedule old")
    assert (await wait_job(client, job.job_id, timeout=120))["status"] == "completed"
