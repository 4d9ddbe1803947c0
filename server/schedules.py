"""CREATE SCHEDULE, SHOW SCHEDULES, DROP SCHEDULE, and the loop that runs them.

A schedule is a catalog record (`system.schedules`), so it survives restarts.
About once a second the loop takes the schedules that are due (`due()`, a pure
function of the records, the time and the running jobs) and starts each as an
ordinary detached backup job, by user `scheduler`, with the statement
`BACKUP DATABASE ns TO 'target' … -- schedule name`. The next run is `every`
after the run started, or for a `CRON` schedule the next time the expression
names after the run started (cron times are UTC), so after downtime a missed
run happens once, not once per missed interval. While a schedule's last run is
still going, the schedule waits for it rather than piling runs up."""

from __future__ import annotations

import asyncio
import copy
import logging
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter

from catalog import Catalog, Job, Namespace, Schedule
from catalog.diskerrors import DataDirUnavailable
from catalog.errors import AlreadyExists, InvalidArgument, NotFound
from sqlgrammar import ast, to_sql
from storage.backup import Repository

from . import cron, visibility
from .backups import (
    MAX_KEEP_LAST,
    SCHEDULE_OPTIONS,
    backup_work,
    check_backup_options,
    check_options,
)
from .dispatch import Routes
from .intervals import interval_seconds
from .jobs import ACTIVE
from .namespaces import check_namespace_name
from .repos import repository
from .result import Result
from .state import Cairn, Session

routes = Routes()

log = logging.getLogger("cairn.schedules")

CHECK_SECONDS = 1.0
SCHEDULER = "scheduler"  # the user_id of scheduled jobs
MAX_EVERY_SECONDS = 366 * 86400
CRON_MAX = 256  # characters of a cron expression (five fields need far fewer)
EVERY_MAX = 64  # characters of an interval, spaces aside ('365d23h59m59s' is 13)

COLUMNS = [
    ("name", "TEXT"), ("namespace", "TEXT"), ("target", "TEXT"), ("every", "TEXT"),
    ("cron", "TEXT"), ("keep_last", "BIGINT"), ("next_run_at", "TIMESTAMP"),
    ("last_job_id", "TEXT"), ("last_status", "TEXT"),
]

# One at a time per server: a loop pass, CREATE and DROP (so a pass never
# brings back a schedule dropped meanwhile, nor starts one twice).
_locks: weakref.WeakKeyDictionary[Cairn, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock(cairn: Cairn) -> asyncio.Lock:
    return _locks.setdefault(cairn, asyncio.Lock())


# --- time -------------------------------------------------------------------


def every_text(text: str) -> str:
    """An interval as stored and shown: without spaces, in lower case ('1h30m')."""
    return "".join(text.split()).lower()


def parse_every(text: str) -> int:
    """An interval like '30s', '15m', '1h', '1d' or '1h30m', in seconds. One
    over EVERY_MAX characters is refused as a cron expression over CRON_MAX
    is: unbounded, '0s' four million times and '1d' (8 MB) was stored whole,
    echoed by CREATE and SHOW SCHEDULES and read by the loop every second."""
    compact = every_text(text)
    if len(compact) > EVERY_MAX:
        raise InvalidArgument(f"interval is {len(compact):,} characters; at most {EVERY_MAX}")
    try:
        seconds = interval_seconds(compact)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if seconds < 1:
        raise InvalidArgument(f"interval '{compact}' must be at least 1 second")
    if seconds > MAX_EVERY_SECONDS:
        raise InvalidArgument(f"interval '{compact}' must be at most 366 days")
    return seconds


def check_cron(text: str) -> str:
    """A cron expression of five fields (minute hour day-of-month month
    day-of-week) or a macro like '@daily', as standard cron reads it
    (server/cron.py); times are UTC."""
    expr = " ".join(text.split())
    if len(expr) > CRON_MAX:
        raise InvalidArgument(f"cron expression is {len(expr)} characters; at most {CRON_MAX}")
    if not (expr.lower() in cron.MACROS or len(expr.split(" ")) == 5):
        raise InvalidArgument(
            f"cron expression '{text}' is not valid: give five fields, minute hour "
            "day-of-month month day-of-week, as in '0 3 * * *' (03:00 UTC every day)")
    try:
        cron.fields(expr)
    except cron.CronError as exc:
        raise InvalidArgument(f"cron expression '{text}': {exc}") from None
    if not croniter.is_valid(cron.croniter_form(expr)):
        raise InvalidArgument(f"cron expression '{text}' is not valid")
    try:
        next_cron(expr, datetime.now(UTC))
    except CroniterBadDateError:  # valid fields that name no date: '0 0 30 2 *'
        raise InvalidArgument(
            f"cron expression '{text}' names no date that exists (such as 30 February)"
        ) from None
    return expr


# expression -> (from, next): next_cron(expr, t) is `next` for every t in
# [from, next). The loop asks every cron schedule's next time each second
# (set_back); computed each time, 5,000 schedules took ~0.5 s of croniter a
# second on the event loop, stalling every client. Now croniter runs once per
# expression per time it names (and again when the clock goes back).
_NEXT: dict[str, tuple[datetime, datetime]] = {}
NEXT_KEPT = 100_000  # expressions remembered; past that the memo starts again


def next_cron(expr: str, after: datetime) -> datetime:
    """The first time after `after` that the cron expression names (UTC), as
    standard cron reads it (croniter is given `cron.croniter_form`)."""
    after = after.astimezone(UTC)
    known = _NEXT.get(expr)
    if known is not None and known[0] <= after < known[1]:
        return known[1]
    it = croniter(cron.croniter_form(expr), after)
    when: datetime = it.get_next(datetime).astimezone(UTC)
    if len(_NEXT) >= NEXT_KEPT:
        _NEXT.clear()
    _NEXT[expr] = (after, when)
    return when


def iso(when: datetime) -> str:
    """The catalog's timestamp form: ISO-8601 UTC with milliseconds and a `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def refused(schedule: Schedule) -> str | None:
    """What SHOW SCHEDULES says of a cron schedule stored by an older release
    whose expression is no longer taken (server/cron.py), or None. Such a
    schedule never runs: croniter's reading of it named other days."""
    why = None if schedule.cron is None else cron.refusal(schedule.cron)
    if why is None and schedule.cron is not None and _names_no_date(schedule.cron):
        why = "its fields name no date"  # stored before 4d15251: every pass failed on it
    if why is None:
        return None
    return (f"failed: the cron expression '{schedule.cron}' is no longer accepted ({why}); "
            f"it does not run: DROP SCHEDULE {schedule.name} and CREATE it again")


_NO_DATE: dict[str, bool] = {}  # expression -> whether croniter finds no time it names


def _names_no_date(expr: str) -> bool:
    """Whether a stored expression names no date ('0 0 30 2 *', taken before
    4d15251): croniter raised on it in each pass, and no schedule ran."""
    if expr not in _NO_DATE:
        if len(_NO_DATE) >= NEXT_KEPT:
            _NO_DATE.clear()
        try:
            next_cron(expr, datetime.now(UTC))
            _NO_DATE[expr] = False
        except CroniterBadDateError:
            _NO_DATE[expr] = True
    return _NO_DATE[expr]


def due(schedules: Iterable[Schedule], now: datetime, running: set[str]) -> list[Schedule]:
    """The schedules to start at `now`: next run reached, last run not still going
    (`running` holds the ids of jobs still queued or running)."""
    return [
        s for s in schedules
        if s.next_run_at is not None and parse_iso(s.next_run_at) <= now
        and s.last_job_id not in running
    ]


def next_run(schedule: Schedule, started: datetime) -> datetime:
    """`every` after the run that starts now, however late it is; for a cron
    schedule, the expression's next time after now."""
    if schedule.cron is not None:
        return next_cron(schedule.cron, started)
    return started + timedelta(seconds=schedule.every_seconds)


def set_back(schedules: Iterable[Schedule], now: datetime) -> list[Schedule]:
    """The schedules whose next run lies more than one period past `now` (for
    cron: past the expression's next time after now): the clock went back
    since it was stamped (a wrong date corrected, a step back across a restart).
    Left so, an `EVERY '2s'` schedule made no run for the 30 days the date had
    been ahead, silently; their next run is computed again from now."""
    return [
        s for s in schedules
        if s.next_run_at is not None and parse_iso(s.next_run_at) > next_run(s, now)
    ]


# --- statements -------------------------------------------------------------


@routes.handles(ast.CreateSchedule, role="admin")
async def create_schedule(cairn: Cairn, session: Session, stmt: ast.CreateSchedule) -> Result:
    opts = check_options("CREATE SCHEDULE", stmt.options, SCHEDULE_OPTIONS)
    check_backup_options(opts)
    cron = None if stmt.cron is None else check_cron(stmt.cron)
    every = 0 if stmt.every is None else parse_every(stmt.every)
    if stmt.keep_last is not None and not 1 <= stmt.keep_last <= MAX_KEEP_LAST:
        raise InvalidArgument(f"KEEP LAST must be from 1 to {MAX_KEEP_LAST:,}")
    check_namespace_name(stmt.namespace)
    if await cairn.run(cairn.catalog.get, Namespace, stmt.namespace) is None:
        raise NotFound(f"Namespace '{stmt.namespace}' does not exist")
    repo = await cairn.run(repository, cairn, stmt.target)
    if repo.target.kind == "archive":  # its first run would be the only one that succeeds
        raise InvalidArgument(
            f"backup target '{stmt.target}' is a single-file archive, which holds one backup; "
            "a schedule needs a directory or S3 target")
    async with _lock(cairn):
        if await cairn.run(cairn.catalog.get, Schedule, stmt.name) is not None:
            if stmt.if_not_exists:
                return Result.of_message(f"Schedule '{stmt.name}' already exists, skipped")
            raise AlreadyExists(f"Schedule '{stmt.name}' already exists")
        await cairn.run(_check_count, cairn)
        now = datetime.now(UTC)
        record = Schedule(
            name=stmt.name, namespace=stmt.namespace, target=repo.uri,
            every=None if stmt.every is None else every_text(stmt.every),
            every_seconds=every, keep_last=stmt.keep_last, options=opts, created_at=iso(now),
            cron=cron,
        )
        record.next_run_at = iso(next_run(record, now))
        await cairn.run(cairn.catalog.put, record)
    when = f"every {record.every}" if cron is None else f"at cron '{cron}' (UTC)"
    return Result.of_message(
        f"Schedule '{stmt.name}' created: namespace '{stmt.namespace}' is backed up to "
        f"'{repo.uri}' {when}, first at {record.next_run_at}"
    )


def _check_count(cairn: Cairn) -> None:
    """One more schedule fits in `[backup] max_schedules` (under `_lock`, so two
    CREATEs at the bound never both pass). Nothing bounded them before: each is
    read by the loop every second."""
    bound = cairn.config.backup.max_schedules
    held = sum(1 for _ in cairn.catalog.scan_raw(Schedule.FAMILY))
    if held >= bound:
        raise InvalidArgument(
            f"the server holds {held:,} schedules, [backup] max_schedules ({bound:,}): "
            "DROP SCHEDULE one, or raise max_schedules in the config file and restart")


@routes.handles(ast.ShowSchedules, role="user")
async def show_schedules(cairn: Cairn, session: Session, stmt: ast.ShowSchedules) -> Result:
    def work() -> list[dict[str, object]]:
        rows = []
        for s in sorted(cairn.catalog.scan(Schedule), key=lambda s: s.name):
            row = {c: getattr(s, c) for c, _ in COLUMNS}
            # live, between two loop passes too; not over what the loop wrote
            # since the run ended (a run that could not be recorded: `waiting`)
            live = s.last_job_id if s.last_status in ACTIVE else None
            job = cairn.catalog.get(Job, live) if live else None
            if job is not None:
                row["last_status"] = job.status
            if (why := refused(s)) is not None:  # before the loop's first pass too
                row.update(next_run_at=None, last_status=why)
            rows.append(row)
        return visibility.rows_for(cairn.config, session, "schedules", rows)

    return Result.of_rows(COLUMNS, await cairn.run(work))


@routes.handles(ast.DropSchedule, role="admin")
async def drop_schedule(cairn: Cairn, session: Session, stmt: ast.DropSchedule) -> Result:
    async with _lock(cairn):
        if await cairn.run(cairn.catalog.get, Schedule, stmt.name) is None:
            if stmt.if_exists:
                return Result.of_message(f"Schedule '{stmt.name}' does not exist, skipped")
            raise NotFound(f"Schedule '{stmt.name}' does not exist")
        await cairn.run(cairn.catalog.delete, Schedule, stmt.name)
    return Result.of_message(f"Schedule '{stmt.name}' dropped (a run under way goes on)")


# --- the loop ---------------------------------------------------------------


def backup_options(schedule: Schedule) -> dict[str, object]:
    options = dict(schedule.options)
    if schedule.keep_last is not None:
        options["keep_last"] = schedule.keep_last
    return options


def statement_of(schedule: Schedule) -> str:
    """The SQL a scheduled run stands for, marked with the schedule's name."""
    options: Any = tuple(backup_options(schedule).items())
    stmt = ast.BackupDatabase(schedule.namespace, schedule.target, options=options)
    return f"{to_sql(stmt)} -- schedule {schedule.name}"


async def start_run(cairn: Cairn, schedule: Schedule) -> Job:
    """Start one run of a schedule as a detached backup job. Everything that can
    go wrong with it (the namespace is gone, the target is refused) fails the job."""
    text = statement_of(schedule)
    session = Session(user_id=SCHEDULER, role="admin", text=text)
    options = backup_options(schedule)

    def repo() -> Repository:
        compression = str(options.get("compression", "zstd"))
        return repository(cairn, schedule.target, compression=compression)

    work = backup_work(cairn, schedule.namespace, repo, options)
    return await cairn.jobs.run("backup", session, work, namespace=schedule.namespace,
                                target=schedule.target, statement=text, detached=True)


async def run_due(cairn: Cairn, now: datetime | None = None) -> list[Job]:
    """One pass of the loop: record how earlier runs ended, start what is due.
    Returns the jobs started."""
    now = now or datetime.now(UTC)
    started: list[Job] = []
    async with _lock(cairn):
        # (off the event loop: a first read asks croniter of each expression)
        read = await cairn.run(read_schedules, cairn.catalog)
        schedules = [s for s, _ in read]
        await cairn.run(_record_endings, cairn, schedules)
        stopped = [(s, why) for s, why in read if why is not None]
        for schedule, why in stopped:
            schedules.remove(schedule)
            if schedule.next_run_at is not None:  # once: stop it, and say why
                schedule.next_run_at, schedule.last_status = None, why
                log.warning("schedule %s: %s", schedule.name, schedule.last_status)
                await cairn.run(cairn.catalog.keep, schedule)
        # Off the event loop: a first pass computes every cron schedule's next time.
        for schedule in await cairn.run(set_back, schedules, now):
            schedule.next_run_at = iso(next_run(schedule, now))
            log.warning("schedule %s: its next run was past one period from now (the "
                        "clock went back); next run now %s", schedule.name,
                        schedule.next_run_at)
            await cairn.run(cairn.catalog.keep, schedule)
        for schedule in due(schedules, now, set(cairn.jobs.active())):
            try:
                job = await start_run(cairn, schedule)
                schedule.last_job_id, schedule.last_status = job.job_id, job.status
                started.append(job)
            except DataDirUnavailable as exc:  # its job cannot be recorded: it stays due
                await cairn.run(_wait_for_room, cairn, schedule, exc)
                continue
            except Exception:  # not even a job could be recorded; try again next time
                log.exception("schedule %s could not start", schedule.name)
                schedule.last_status = "failed"
            schedule.next_run_at = iso(next_run(schedule, now))
            await cairn.run(cairn.catalog.keep, schedule)
    return started


WAITING = "waiting: "  # last_status of a schedule whose due run could not be recorded


def _wait_for_room(cairn: Cairn, schedule: Schedule, exc: DataDirUnavailable) -> None:
    """A due run whose job the data directory refused to record (a full
    disk): the schedule stays due, so the run starts at the first pass once
    the disk takes writes again, and its `last_status` says why meanwhile
    (kept in memory while the disk refuses: `Catalog.keep`). One line in the
    log when it starts waiting; each pass after tries again without a word.
    Until 2026-12-07 every pass logged two traces and the record said the
    last run's status."""
    status = (f"{WAITING}the run due at {schedule.next_run_at} could not be recorded: "
              f"{exc.message}; it starts once the data directory takes writes again")
    if schedule.last_status == status:
        return
    if not (schedule.last_status or "").startswith(WAITING):
        log.warning("schedule %s: %s", schedule.name, status)
    schedule.last_status = status
    cairn.catalog.keep(schedule)


# A catalog's schedules as the loop last read them: (Catalog.writes of
# Schedule then, each record with what `refused` says of it).
_READ: weakref.WeakKeyDictionary[Catalog, tuple[int, list[tuple[Schedule, str | None]]]] = (
    weakref.WeakKeyDictionary())


def read_schedules(catalog: Catalog) -> list[tuple[Schedule, str | None]]:
    """Every schedule (a copy the pass may change) and why it does not run
    (`refused`, None: it runs), decoded again only once a Schedule record was
    written since (`Catalog.writes`, taken before the scan). The loop decoded
    every record each second: 12 records of an older server with an 8 MB
    interval took an idle server from 0.02 s to ~2 s of CPU per 10 s."""
    stamp = catalog.writes[Schedule.FAMILY]
    hit = _READ.get(catalog)
    if hit is None or hit[0] != stamp:
        hit = (stamp, [(s, refused(s)) for s in catalog.scan(Schedule)])
        _READ[catalog] = hit
    return [(copy.copy(s), why) for s, why in hit[1]]


def _record_endings(cairn: Cairn, schedules: list[Schedule]) -> None:
    """Copy the status of each schedule's last job while it was still active."""
    for s in schedules:
        if s.last_job_id is None or s.last_status not in ACTIVE:
            continue
        job = cairn.catalog.get(Job, s.last_job_id)
        if job is not None and job.status != s.last_status:
            s.last_status = job.status
            # In memory while the disk refuses writes (the job's own row is
            # kept so too): system.schedules said `queued` for a run
            # system.jobs said `failed`, and every pass failed with a trace.
            cairn.catalog.keep(s)


async def schedule_loop(cairn: Cairn, period: float = CHECK_SECONDS) -> None:
    """Forever: every `period` seconds, one `run_due` pass. A failing pass is
    logged and the loop goes on."""
    said: str | None = None  # a refusal of the data directory, said once
    while True:
        await asyncio.sleep(period)
        try:
            await run_due(cairn)
            said = None
        except asyncio.CancelledError:
            raise
        except DataDirUnavailable as exc:  # an operator's matter: one line, not a trace
            if exc.message != said:
                log.warning("checking schedules failed (tried again every %g s): %s",
                            period, exc.message)
            said = exc.message
        except Exception:
            log.exception("checking schedules failed")
