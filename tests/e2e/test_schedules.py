"""CREATE SCHEDULE, SHOW SCHEDULES, DROP SCHEDULE and the loop that runs them.

Time is faked where it matters: `run_due(cairn, now)` is one pass of the loop
at any instant, and `due()` is a pure function of the records and the time.
One test lets the server's own loop run a '1s' schedule; one restarts a real
`cairn serve` after a simulated three hours of downtime."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog, Schedule
from catalog.errors import InvalidArgument
from server import faults
from server import schedules as schedules_mod
from server.schedules import due, iso, parse_every, parse_iso, run_due
from tests.helpers import Gate, idle_schedule_loop, ok, sql, state, wait_job


@pytest.fixture(autouse=True)
def _own_clock(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The tests pass their own `now` to run_due; the server's loop, on the real
    clock, is idle (but in the test of the loop itself)."""
    if "by_itself" not in request.node.name:
        monkeypatch.setattr(schedules_mod, "schedule_loop", idle_schedule_loop)



async def expect(client: Any, text: str, code: str, fragment: str = "") -> None:
    _, body = await sql(client, text)
    assert body["status"] == "error" and body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body


async def schedules(client: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in (await ok(client, "SHOW SCHEDULES"))[0]["rows"]}


# --- pure parts ---------------------------------------------------------------------


def test_intervals() -> None:
    assert [parse_every(t) for t in ("30s", "15m", "1h", "1d", "1h30m", " 2H ", "366d")] == [
        30, 900, 3600, 86400, 5400, 7200, 366 * 86400]
    # Digits other than ASCII ('1\u0663s', fullwidth '\uff11s') were read as numbers.
    for bad in ("", "0s", "0h0m", "15", "h", "1.5h", "-1h", "1w", "367d", "1 hour", "'1h'",
                "1\u0663s", "\uff11s"):
        with pytest.raises(InvalidArgument):
            parse_every(bad)


def test_due_is_a_function_of_the_records_and_the_time() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def schedule(name: str, next_run: datetime, last_job: str | None = None) -> Schedule:
        return Schedule(name, "app", "/b/nightly", "1h", 3600, next_run_at=iso(next_run),
                        last_job_id=last_job)

    records = [schedule("early", t0 - timedelta(hours=5)), schedule("now", t0),
               schedule("later", t0 + timedelta(seconds=1)),
               schedule("busy", t0 - timedelta(hours=1), last_job="job-1")]
    assert [s.name for s in due(records, t0, running={"job-1"})] == ["early", "now"]
    assert [s.name for s in due(records, t0, running=set())] == ["early", "now", "busy"]
    assert [s.name for s in due(records, t0 - timedelta(days=1), running=set())] == []


# --- statements -----------------------------------------------------------------------


async def test_create_show_and_drop(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app")
    before = datetime.now(UTC)
    results = await ok(client, "CREATE SCHEDULE nightly FOR BACKUP DATABASE app TO 'nightly' "
                               "EVERY '1h' KEEP LAST 3 WITH (label = 'hourly')")
    assert "created" in results[0]["message"]
    row = (await schedules(client))["nightly"]
    next_run = parse_iso(row.pop("next_run_at"))
    assert row == {"name": "nightly", "namespace": "app",
                   "target": str(tmp_path / "backups" / "nightly"), "every": "1h",
                   "cron": None, "keep_last": 3, "last_job_id": None, "last_status": None}
    assert before + timedelta(hours=1) <= next_run <= datetime.now(UTC) + timedelta(hours=1)
    stored = (await ok(client, "SELECT name, every, created_at FROM system.schedules"))[0]["rows"]
    assert [(r["name"], r["every"]) for r in stored] == [("nightly", "1h")]

    await expect(client, "CREATE SCHEDULE nightly FOR BACKUP DATABASE app TO 'x' EVERY '1d'",
                 "ALREADY_EXISTS", "nightly")
    results = await ok(client, "CREATE SCHEDULE IF NOT EXISTS nightly FOR BACKUP DATABASE app "
                               "TO 'x' EVERY '1d'")
    assert "already exists" in results[0]["message"]
    assert (await schedules(client))["nightly"]["every"] == "1h"  # untouched

    await ok(client, "DROP SCHEDULE nightly")
    assert await schedules(client) == {}
    await expect(client, "DROP SCHEDULE nightly", "NOT_FOUND", "nightly")
    results = await ok(client, "DROP SCHEDULE IF EXISTS nightly")
    assert "does not exist" in results[0]["message"]


@pytest.mark.parametrize("text, code, fragment", [
    ("CREATE SCHEDULE s FOR BACKUP DATABASE ghost TO 'n' EVERY '1h'", "NOT_FOUND", "ghost"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '0s'", "INVALID_ARGUMENT", "0s"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY 'often'", "INVALID_ARGUMENT",
     "often"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '400d'", "INVALID_ARGUMENT", "366"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '1h' KEEP LAST 0",
     "INVALID_ARGUMENT", "KEEP LAST"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '1h' KEEP LAST "
     "99999999999999999999", "INVALID_ARGUMENT", "1,000,000"),  # system.schedules was a 500
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '1h' KEEP LAST 1000001",
     "INVALID_ARGUMENT", "KEEP LAST"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '1h' "
     "WITH (keep_last = 99999999999999999999999)", "INVALID_ARGUMENT", "keep_last"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '1h' WITH (detached = true)",
     "INVALID_ARGUMENT", "detached"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' EVERY '1h' WITH (compression = 'lz4')",
     "INVALID_ARGUMENT", "compression"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO '../out' EVERY '1h'", "PERMISSION_DENIED",
     ""),
    # a single-file archive holds one backup: every run after the first failed, for ever
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'nightly.tar' EVERY '1h'",
     "INVALID_ARGUMENT", "'nightly.tar' is a single-file archive, which holds one backup"),
    ("CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n.tar.zst' CRON '0 3 * * *' KEEP LAST 3",
     "INVALID_ARGUMENT", "a schedule needs a directory or S3 target"),
])
async def test_bad_schedules_are_refused(client: Any, text: str, code: str,
                                         fragment: str) -> None:
    await ok(client, "CREATE NAMESPACE app")
    await expect(client, text, code, fragment)
    assert await schedules(client) == {}


# --- the loop ------------------------------------------------------------------------------


async def scheduled(client: Any, name: str = "nightly", every: str = "1d",
                    extra: str = "") -> datetime:
    """Create a schedule for app; returns its first next_run_at."""
    await ok(client, f"CREATE SCHEDULE {name} FOR BACKUP DATABASE app TO 'nightly' "
                     f"EVERY '{every}'{extra}")
    return parse_iso((await schedules(client))[name]["next_run_at"])


async def test_a_due_schedule_runs_once_as_a_backup_job(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT);"
                     "INSERT INTO app.t VALUES (1)")
    t0 = await scheduled(client, extra=" KEEP LAST 2 WITH (label = 'daily')")
    cairn = state(client)
    assert await run_due(cairn, t0 - timedelta(seconds=1)) == []

    (job,) = await run_due(cairn, t0)
    done = await wait_job(client, job.job_id)
    assert done["status"] == "completed" and done["job_type"] == "backup"
    assert done["user_id"] == "scheduler"
    target = tmp_path / "backups" / "nightly"
    assert done["statement"] == (f"BACKUP DATABASE app TO '{target}' "
                                 "WITH (label = 'daily', keep_last = 2) -- schedule nightly")
    row = (await schedules(client))["nightly"]
    assert row["last_job_id"] == job.job_id and row["last_status"] == "completed"
    assert parse_iso(row["next_run_at"]) == t0 + timedelta(days=1)
    assert await run_due(cairn, t0 + timedelta(hours=23)) == []  # also records the ending
    stored = (await ok(client, "SELECT last_status FROM system.schedules"))[0]["rows"]
    assert stored == [{"last_status": "completed"}]

    # Ten days of downtime: one run, and the next a day after it.
    late = t0 + timedelta(days=10)
    (job2,) = await run_due(cairn, late)
    await wait_job(client, job2.job_id)
    next_run = parse_iso((await schedules(client))["nightly"]["next_run_at"])
    assert next_run == late + timedelta(days=1)
    assert await run_due(cairn, late + timedelta(hours=1)) == []
    (job3,) = await run_due(cairn, late + timedelta(days=1))
    await wait_job(client, job3.job_id)
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]  # KEEP LAST 2
    assert len(listed) == 2 and {b["label"] for b in listed} == {"daily"}


async def test_a_schedule_waits_for_its_last_run_to_end(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT);"
                     "INSERT INTO app.t VALUES (1)")
    t0 = await scheduled(client, every="1h")
    cairn = state(client)
    gate = Gate(cairn)
    faults.register("backup.before_object", gate)
    (first,) = await run_due(cairn, t0)
    await gate.reach()
    assert await run_due(cairn, t0 + timedelta(hours=5)) == []
    row = (await schedules(client))["nightly"]
    assert row["last_status"] == "running"
    assert parse_iso(row["next_run_at"]) == t0 + timedelta(hours=1)
    gate.opened.set()
    await wait_job(client, first.job_id)
    (second,) = await run_due(cairn, t0 + timedelta(hours=5))
    assert (await wait_job(client, second.job_id))["status"] == "completed"


async def test_a_clock_set_back_does_not_stop_a_schedule(client: Any) -> None:
    """A run while the date was 30 days ahead stamped the next run 30 days on;
    once the date is right again the next run is one period from now, not then."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT);"
                     "INSERT INTO app.t VALUES (1)")
    t0 = await scheduled(client, every="1h")
    cairn = state(client)
    ahead = t0 + timedelta(days=30)
    (first,) = await run_due(cairn, ahead)
    await wait_job(client, first.job_id)
    assert await run_due(cairn, t0) == []  # the date corrected
    row = (await schedules(client))["nightly"]
    assert parse_iso(row["next_run_at"]) == t0 + timedelta(hours=1)
    (second,) = await run_due(cairn, t0 + timedelta(hours=1))
    assert (await wait_job(client, second.job_id))["status"] == "completed"


async def test_a_schedule_whose_namespace_is_gone_fails_and_others_go_on(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE NAMESPACE gone")
    await ok(client, "CREATE SCHEDULE a_gone FOR BACKUP DATABASE gone TO 'nightly' EVERY '1h'")
    await ok(client, "CREATE SCHEDULE b_app FOR BACKUP DATABASE app TO 'nightly' EVERY '1h'")
    await ok(client, "DROP NAMESPACE gone")
    cairn = state(client)
    later = datetime.now(UTC) + timedelta(hours=2)
    jobs = await run_due(cairn, later)
    assert len(jobs) == 2
    ended = [await wait_job(client, j.job_id) for j in jobs]
    assert [(j["namespace"], j["status"]) for j in ended] == [("gone", "failed"),
                                                              ("app", "completed")]
    assert ended[0]["error_message"] == "Namespace 'gone' does not exist"
    await run_due(cairn, later)
    rows = (await ok(client, "SELECT name, last_status FROM system.schedules ORDER BY name"))
    assert rows[0]["rows"] == [{"name": "a_gone", "last_status": "failed"},
                               {"name": "b_app", "last_status": "completed"}]


async def test_keep_last_never_drops_the_backups_of_a_namespace_dropped_before(
        client: Any) -> None:
    """A schedule with KEEP LAST goes on after DROP NAMESPACE; once a namespace
    of that name was created again, its runs' keep_last dropped every backup
    of the dropped database (the only copies of its rows). A namespace dropped
    and created again is another database (its creation time differs): its
    backups are neither counted nor dropped, by a schedule or a BACKUP."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (x INT);"
                     "INSERT INTO app.t VALUES (1), (2)")
    t0 = await scheduled(client, every="1h", extra=" KEEP LAST 2")
    cairn = state(client)

    async def run(at: datetime) -> dict[str, Any]:
        (job,) = await run_due(cairn, at)
        done = await wait_job(client, job.job_id)
        assert done["status"] == "completed", done
        return done

    old = [(await run(t0 + timedelta(hours=k)))["result"]["backup_id"] for k in range(2)]
    await ok(client, "DROP NAMESPACE app CASCADE; CREATE NAMESPACE app")
    new = []
    for k in range(2, 6):
        done = await run(t0 + timedelta(hours=k))
        new.append(done["result"]["backup_id"])
        assert not set(done["result"].get("dropped") or []) & set(old), done
    listed = {b["backup_id"]: b["rows"]
              for b in (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]}
    assert listed == {old[0]: 2, old[1]: 2, new[-2]: 0, new[-1]: 0}

    # A BACKUP's keep_last alike: only the namespace's own backups count.
    await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)")
    listed = {b["backup_id"]: b["rows"]
              for b in (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]}
    assert len(listed) == 3 and {old[0], old[1]} <= set(listed)
    # Restored, the dropped database is that database again: its backups count.
    await ok(client, f"RESTORE DATABASE app FROM 'nightly' WITH (backup_id = '{old[1]}', "
                     "replace = true)")
    (res,) = await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 2)")
    listed = {b["backup_id"]: b["rows"]
              for b in (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]}
    assert old[0] not in listed and old[1] in listed and listed[res["rows"][0]["backup_id"]] == 2


async def test_a_namespace_created_again_in_the_same_millisecond_is_another(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DROP and CREATE NAMESPACE in one millisecond stamped the new namespace
    with the old one's creation time: keep_last took the old one's backups for
    the new one's."""
    from storage import registry

    monkeypatch.setattr(registry, "utcnow", lambda: "2026-12-06T12:00:00.000Z", raising=False)

    async def created() -> str:
        (ns,) = (await ok(client, "SHOW NAMESPACES"))[0]["rows"]
        return str(ns["created_at"])

    await ok(client, "CREATE NAMESPACE app; DROP NAMESPACE app; CREATE NAMESPACE app")
    assert await created() == "2026-12-06T12:00:00.001Z"
    await ok(client, "DROP NAMESPACE app; CREATE NAMESPACE app")
    assert await created() == "2026-12-06T12:00:00.000Z"


async def test_the_server_runs_schedules_by_itself(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE SCHEDULE often FOR BACKUP DATABASE app TO 'nightly' EVERY '1s'")
    deadline = time.monotonic() + 5
    while True:
        row = (await schedules(client))["often"]
        if row["last_status"] == "completed":
            break
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.05)
    job = (await ok(client, f"SELECT user_id, status FROM system.jobs "
                            f"WHERE job_id = '{row['last_job_id']}'"))[0]["rows"]
    assert job == [{"user_id": "scheduler", "status": "completed"}]
    await ok(client, "DROP SCHEDULE often")


def test_schedules_survive_a_restart_and_a_missed_run_happens_once(
    tmp_path: Path, server_process: Any
) -> None:
    data = tmp_path / "data"
    srv = server_process(data)
    for text in ("CREATE NAMESPACE app",
                 "CREATE SCHEDULE hourly FOR BACKUP DATABASE app TO 'nightly' EVERY '1h'"):
        status, body = srv.post(text)
        assert status == 200, body
    assert srv.stop() == 0

    catalog = Catalog(data / "catalog")  # three hours of downtime
    record = catalog.get(Schedule, "hourly")
    record.next_run_at = iso(datetime.now(UTC) - timedelta(hours=3))
    catalog.put(record)
    catalog.close()

    again = server_process(data)
    deadline = time.monotonic() + 60  # the missed run starts within a second; a loaded CI is slow
    while True:
        _, body = again.post("SHOW SCHEDULES")
        (row,) = body["results"][0]["rows"]
        if row["last_status"] == "completed":
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    assert parse_iso(row["next_run_at"]) > datetime.now(UTC) + timedelta(minutes=59)
    _, body = again.post("SELECT job_id, status FROM system.jobs WHERE user_id = 'scheduler'")
    assert body["results"][0]["rows"] == [{"job_id": row["last_job_id"], "status": "completed"}]
