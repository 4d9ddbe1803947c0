"""CRON expressions mean what standard five-field cron means. croniter 7.0
read a one-value range ('7-7', '3-3', '6-6', '1-1/2') as '*' (an hourly
schedule ran every minute, a weekly one daily, and KEEP LAST then kept n
minutes of backups), a backwards range of names as wrapping round the week,
and 'N/step' of days of the week as ending at Saturday. The next runs are
checked against fixed datetimes and against a small matcher written here from
the standard rules, never against croniter's own output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server import schedules
from server.schedules import next_cron, parse_iso
from tests.helpers import err, idle_schedule_loop, ok, rows

SUNDAY = datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC)  # a Sunday, half past a minute


@pytest.fixture(autouse=True)
def _own_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedules, "schedule_loop", idle_schedule_loop)


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def runs(expr: str, after: datetime, n: int) -> list[datetime]:
    out = []
    for _ in range(n):
        after = next_cron(expr, after)
        out.append(after)
    return out


@pytest.mark.parametrize(("expr", "expected"), [
    ("7-7 * * * *", [d(2026, 12, 6, 12, 7), d(2026, 12, 6, 13, 7), d(2026, 12, 6, 14, 7)]),
    ("0 3 * * 3-3", [d(2026, 12, 9, 3), d(2026, 12, 16, 3), d(2026, 12, 23, 3)]),
    ("0 0 1 6-6 *", [d(2027, 6, 1), d(2028, 6, 1), d(2029, 6, 1)]),
    ("1-1/2 * * * *", [d(2026, 12, 6, 12, 1), d(2026, 12, 6, 13, 1), d(2026, 12, 6, 14, 1)]),
    ("0 0 * * mon-mon", [d(2026, 12, 7), d(2026, 12, 14), d(2026, 12, 21)]),
    ("0 0 * * 0-0", [d(2026, 12, 13), d(2026, 12, 20), d(2026, 12, 27)]),
    ("0 0 * * 7-7", [d(2026, 12, 13), d(2026, 12, 20), d(2026, 12, 27)]),
    ("0 0 * 12-12 *", [d(2026, 12, 7), d(2026, 12, 8), d(2026, 12, 9)]),
    ("2-2/5 * * * *", [d(2026, 12, 6, 12, 2), d(2026, 12, 6, 13, 2), d(2026, 12, 6, 14, 2)]),
    # 7 is Sunday too, and ends a range: Friday to Sunday
    ("0 0 * * 5-7", [d(2026, 12, 11), d(2026, 12, 12), d(2026, 12, 13), d(2026, 12, 18)]),
    # day of month and day of week both restricted: either (1st or a Friday)
    ("0 0 1 * 5", [d(2026, 12, 11), d(2026, 12, 18), d(2026, 12, 25), d(2027, 1, 1),
                   d(2027, 1, 8)]),
    ("30 2 * * MON-FRI", [d(2026, 12, 7, 2, 30), d(2026, 12, 8, 2, 30)]),
    ("5/20 * * * *", [d(2026, 12, 6, 12, 5), d(2026, 12, 6, 12, 25), d(2026, 12, 6, 12, 45),
                      d(2026, 12, 6, 13, 5)]),
    ("@weekly", [d(2026, 12, 13), d(2026, 12, 20)]),
])
def test_next_runs_at_fixed_times(expr: str, expected: list[datetime]) -> None:
    assert runs(expr, SUNDAY, len(expected)) == expected


# --- a matcher written from the standard rules (crontab(5)) ------------------

BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
NAMES = {**{m: i + 1 for i, m in enumerate(MONTHS)}, **{w: i for i, w in enumerate(DAYS)}}


def _num(text: str) -> int:
    return NAMES[text.lower()] if text.lower() in NAMES else int(text)


def _field(text: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            a, b = (_num(x) for x in rng.split("-"))
        else:
            a = _num(rng)
            b = high if step else a
        out.update(range(a, b + 1, int(step or 1)))
    return out


def reference_next(expr: str, after: datetime) -> datetime:
    f = expr.split()
    mins, hours, doms, months, dows = (_field(t, *b) for t, b in zip(f, BOUNDS, strict=True))
    dows = {0 if x == 7 else x for x in dows}
    either = f[2] != "*" and f[4] != "*"
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = t.replace(hour=0, minute=0)
    for _ in range(366 * 5):
        dow = (day.weekday() + 1) % 7
        on_day = ((day.day in doms or dow in dows) if either
                  else day.day in doms and dow in dows)
        if day.month in months and on_day:
            for h in sorted(hours):
                for m in sorted(mins):
                    when = day.replace(hour=h, minute=m)
                    if when >= t:
                        return when
        day += timedelta(days=1)
    raise AssertionError("no time in five years")


@pytest.mark.parametrize("expr", [
    "7-7 * * * *", "0 3 * * 3-3", "0 0 1 6-6 *", "1-1/2 * * * *", "0 12 * * fri-fri",
    "10-40/15 */5 * * *", "1,5-7,10 * * * *", "0 0 */10 * *", "0 0 1-7 * 1", "0 0 13 * 5",
    "0 0 1,15 * 5", "0 0 * jan-mar *", "0 0 1 jan,jun *", "0 0 * * */2", "0 0 * * 1-5/2",
    "0 0 * * 0-7/2", "0 0 * * 0,7", "0 0 1 */3 *", "*/25 * * * *", "59 23 31 * *",
    "0 0 1-31/2 * 1", "0 0 * * sat,sun", "0 0 1 * 0-7", "15 4 29 2 *", "0 9 * * mon-fri/2",
    "3/7 2/9 * * *", "0 0 31 1-12/2 *",
])
@pytest.mark.parametrize("after", [SUNDAY, d(2027, 2, 27, 23, 59), d(2028, 12, 31, 23, 30)])
def test_next_runs_match_the_standard_rules(expr: str, after: datetime) -> None:
    want = []
    at = after
    for _ in range(4):
        at = reference_next(expr, at)
        want.append(at)
    assert runs(expr, after, 4) == want


# --- what standard cron does not have, or cron implementations read apart -----

@pytest.mark.parametrize(("expr", "says"), [
    ("0 0 L * *", "is not standard cron ('L'"),
    ("0 0 15W * *", "is not standard cron ('15W'"),
    ("0 0 * * 1#2", "is not standard cron ('1#2'"),
    ("0 0 ? * 1", "is not standard cron ('?'"),
    ("0 0 * * 5L", "is not standard cron ('5L'"),
    ("mon * * * *", "is not standard cron ('mon'"),
    # croniter wrapped these round the week (Saturday and Sunday)
    ("0 0 * * sat-sun", "the day-of-week range 'sat-sun' runs backwards (Sunday is 0"),
    ("0 0 * * fri-sun", "the day-of-week range 'fri-sun' runs backwards"),
    ("0 0 * dec-jan *", "the month range 'dec-jan' runs backwards"),
    # 5-6 (croniter) or 5-7 (cronie)
    ("0 0 * * 5/1", "cron implementations disagree on where '5/1' ends"),
    # Vixie cron and cronie: both days (a field starting with '*'); croniter: either
    ("0 0 */2 * 1", "cron implementations disagree"),
    ("0 0 1 * */2", "cron implementations disagree"),
    ("0 0 * * 8", "8 is out of the day-of-week field's range 0-7"),
    ("0 0 * 13 *", "13 is out of the month field's range 1-12"),
    ("*/0 * * * *", "a step of 0 in the minute field"),
    ("@reboot", "is not valid: give five fields"),
])
async def test_what_standard_cron_does_not_mean_one_way_is_refused(
        client: Any, expr: str, says: str) -> None:
    await ok(client, "CREATE NAMESPACE app")
    message = await err(client, f"CREATE SCHEDULE s FOR BACKUP DATABASE app TO 'n' CRON '{expr}'",
                        "INVALID_ARGUMENT")
    assert says in message, message
    assert await rows(client, "SHOW SCHEDULES") == []


async def test_a_one_value_range_schedule_runs_hourly(client: Any) -> None:
    """The finding: '7-7 * * * *' was shown and run every minute."""
    await ok(client, "CREATE NAMESPACE app")
    (res,) = await ok(client, "CREATE SCHEDULE h FOR BACKUP DATABASE app TO 'n' "
                              "CRON '7-7 * * * *' KEEP LAST 4")
    assert "cron '7-7 * * * *' (UTC)" in res["message"]
    (row,) = await rows(client, "SHOW SCHEDULES")
    first = parse_iso(row["next_run_at"])
    assert (first.minute, first.second) == (7, 0)
    assert row["cron"] == "7-7 * * * *"  # shown as written
