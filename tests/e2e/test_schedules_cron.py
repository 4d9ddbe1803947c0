"""CREATE SCHEDULE … CRON 'expr': cron times in UTC, the next run shown, bad
expressions refused. Time is faked with `run_due(cairn, now)`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog import Schedule
from server import schedules
from server.app import CAIRN
from server.schedules import next_run, parse_iso, run_due
from tests.helpers import err, idle_schedule_loop, ok, rows, wait_job


@pytest.fixture(autouse=True)
def _own_clock(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The tests pass their own `now` to run_due; the server's loop, on the real
    clock, is idle."""
    monkeypatch.setattr(schedules, "schedule_loop", idle_schedule_loop)



def test_next_run_of_a_cron_schedule_is_the_next_utc_time() -> None:
    s = Schedule(name="n", namespace="app", target="t", every=None, every_seconds=0,
                 cron="0 3 * * *")
    at = datetime(2026, 11, 30, 2, 59, 59, tzinfo=UTC)
    assert next_run(s, at) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert next_run(s, datetime(2026, 11, 30, 3, 0, tzinfo=UTC)) == datetime(
        2026, 12, 1, 3, 0, tzinfo=UTC)
    # The same instant given in another zone gives the same UTC time.
    tokyo = at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert next_run(s, tokyo) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    weekly = Schedule(name="w", namespace="app", target="t", every=None, every_seconds=0,
                      cron="30 2 * * sun")
    assert next_run(weekly, at) == datetime(2026, 12, 6, 2, 30, tzinfo=UTC)  # a Sunday


async def test_cron_schedule_shows_its_next_run_and_runs_then(client: Any) -> None:
    await ok(client,
             "CREATE NAMESPACE app; CREATE TABLE app.t (x INT); INSERT INTO app.t VALUES (1)")
    before = datetime.now(UTC)
    (res,) = await ok(client, "CREATE SCHEDULE nightly FOR BACKUP DATABASE app TO 'nightly' "
                              "CRON '0  3 * * *' KEEP LAST 2")
    assert "cron '0 3 * * *' (UTC)" in res["message"]
    (row,) = await rows(client, "SHOW SCHEDULES")
    assert row["cron"] == "0 3 * * *" and row["every"] is None and row["keep_last"] == 2
    first = parse_iso(row["next_run_at"])
    assert (first.hour, first.minute, first.second) == (3, 0, 0)
    assert before < first <= before + timedelta(days=1)
    stored = await rows(client, "SELECT cron, every, next_run_at FROM system.schedules")
    assert stored == [{"cron": "0 3 * * *", "every": None, "next_run_at": row["next_run_at"]}]

    cairn = client.server.app[CAIRN]
    assert await run_due(cairn, first - timedelta(seconds=1)) == []
    late = first + timedelta(hours=5)  # the server was down at 03:00
    (job,) = await run_due(cairn, late)
    assert (await wait_job(client, job.job_id))["status"] == "completed"
    (row,) = await rows(client, "SHOW SCHEDULES")
    assert parse_iso(row["next_run_at"]) == first + timedelta(days=1)
    assert row["last_status"] == "completed"


async def test_macro_and_day_of_week_forms(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app")
    await ok(client, "CREATE SCHEDULE h FOR BACKUP DATABASE app TO 'n' CRON '@hourly';"
                     "CREATE SCHEDULE w FOR BACKUP DATABASE app TO 'n' CRON '30 2 * * sun'")
    got = {r["name"]: parse_iso(r["next_run_at"]) for r in await rows(client, "SHOW SCHEDULES")}
    assert (got["h"].minute, got["h"].second) == (0, 0)
    assert got["w"].weekday() == 6 and (got["w"].hour, got["w"].minute) == (2, 30)


@pytest.mark.parametrize("expr", [
    "0 3 * *", "61 * * * *", "0 25 * * *", "* * * * * *", "every day", "", "0 3 * * mon-",
])
async def test_a_bad_cron_expression_is_invalid_argument(client: Any, expr: str) -> None:
    await ok(client, "CREATE NAMESPACE app")
    message = await err(client, f"CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' CRON '{expr}'",
                        "INVALID_ARGUMENT")
    assert "cron expression" in message
    assert await rows(client, "SHOW SCHEDULES") == []


@pytest.mark.parametrize(("expr", "says"), [
    ("0 0 30 2 *", "names no date that exists"),  # 30 February: croniter finds no next time
    ("0 0 31 4 *", "names no date that exists"),  # 31 April
    ("1," * 200 + "1 * * * *", "cron expression is 409 characters; at most 256"),
    # croniter's random time, drawn again for each run: another time every day
    ("R R * * *", "the minute field 'R' asks for a random or hashed time"),
    ("0 R(1-4) * * *", "the hour field 'R(1-4)' asks for a random or hashed time"),
    ("0 0 0-0 * *", "0 is out of the day-of-month field's range 1-31"),
    ("5-1 * * * *", "the minute range '5-1' runs backwards"),
])
async def test_a_cron_expression_that_can_never_run_is_invalid_argument(
        client: Any, expr: str, says: str) -> None:
    """Valid fields naming no date were a 500 (CroniterBadDateError); an
    expression of kilobytes was stored as it came."""
    await ok(client, "CREATE NAMESPACE app")
    message = await err(client, f"CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' CRON '{expr}'",
                        "INVALID_ARGUMENT")
    assert says in message
    assert await rows(client, "SHOW SCHEDULES") == []
    await ok(client, "CREATE SCHEDULE leap FOR BACKUP DATABASE app TO 'n' CRON '0 0 29 2 *'")
    (leap,) = await rows(client, "SHOW SCHEDULES")
    when = parse_iso(leap["next_run_at"])
    assert (when.month, when.day) == (2, 29)


async def test_a_loop_pass_computes_no_cron_time_it_already_knows(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's pass (once a second) computed every cron schedule's next
    time with croniter on the event loop (set_back): 5,000 schedules stalled
    every client ~0.5 s a second. Each expression's next time is computed once
    until it passes (or the clock goes back)."""
    await ok(client, "CREATE NAMESPACE app")
    hour = (datetime.now(UTC).hour + 12) % 24  # none due while the test runs
    exprs = [f"{m} {hour} * * *" for m in range(0, 60, 3)] + [f"0 {hour} * * *"] * 20
    await ok(client, "; ".join(f"CREATE SCHEDULE c{i} FOR BACKUP DATABASE app TO 'n' CRON '{e}'"
                               for i, e in enumerate(exprs)))
    calls: list[str] = []
    real = schedules.croniter

    def counted(expr: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(expr)
        return real(expr, *args, **kwargs)

    monkeypatch.setattr(schedules, "croniter", counted)
    cairn = client.server.app[CAIRN]
    now = datetime.now(UTC)
    assert await run_due(cairn, now) == []
    assert len(calls) <= len(set(exprs))  # 20 expressions, 40 schedules
    calls.clear()
    for k in range(1, 6):
        assert await run_due(cairn, now + timedelta(seconds=k)) == []
    assert calls == []
    # Once a time passes, the next is computed again, once per expression.
    later = parse_iso((await rows(client, "SELECT next_run_at FROM system.schedules "
                                          "WHERE name = 'c0'"))[0]["next_run_at"])
    assert schedules.next_cron(exprs[0], later) == later + timedelta(days=1)
    assert calls == [schedules.cron.croniter_form(exprs[0])]


def test_the_memo_of_next_times_follows_the_clock_both_ways() -> None:
    at = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    three = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert schedules.next_cron("0 3 * * *", at) == three
    assert schedules.next_cron("0 3 * * *", three - timedelta(microseconds=1)) == three
    assert schedules.next_cron("0 3 * * *", three) == three + timedelta(days=1)
    assert schedules.next_cron("0 3 * * *", at - timedelta(days=3)) == three - timedelta(days=3)
    assert schedules.next_cron("0 3 * * *", at) == three
