"""The job runner, proven with test-only jobs: row before work, status moves,
progress while running, KILL, restart recovery, bounded history."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog import Catalog, Job, ids, utcnow
from catalog.errors import CairnError, Cancelled, InvalidArgument, NotFound
from server.config import Config
from server.jobs import JobContext, JobRunner
from server.state import Cairn, Session
from storage import priority


@pytest.fixture
def cairn(tmp_path: Path):
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path)
    state = Cairn(cfg, Catalog(tmp_path / "catalog"))
    state.jobs = JobRunner(state)
    yield state
    state.close()
    state.catalog.close()


SESSION = Session(user_id="tester", text="TEST JOB /* as sent */")
STMT = "TEST JOB"


async def test_job_row_exists_before_work_and_completes(cairn: Cairn) -> None:
    seen: list[Job | None] = []

    def work(ctx: JobContext) -> dict:
        seen.append(cairn.catalog.get(Job, ctx.job_id))
        return {"answer": 42}

    job = await cairn.jobs.run("test", SESSION, work, statement=STMT, namespace="app")
    assert seen[0] is not None and seen[0].status == "running"
    stored = cairn.catalog.get(Job, job.job_id)
    assert stored.status == "completed"
    assert stored.result == {"answer": 42}
    assert stored.fraction_completed == 1.0
    assert stored.statement == "TEST JOB" and stored.user_id == "tester"
    assert stored.started_at and stored.finished_at and stored.node_id


async def test_progress_is_visible_while_running(cairn: Cairn) -> None:
    release = threading.Event()
    halfway = threading.Event()

    def work(ctx: JobContext) -> dict:
        ctx.progress(files_total=4, bytes_total=1000, files_done=2, bytes_done=500, force=True)
        halfway.set()
        release.wait(5)
        return {}

    task = asyncio.create_task(cairn.jobs.run("test", SESSION, work, statement=STMT))
    await asyncio.get_running_loop().run_in_executor(None, halfway.wait, 5)
    running = [j for j in cairn.catalog.scan(Job) if j.status == "running"]
    assert len(running) == 1
    assert running[0].bytes_done == 500 and running[0].files_total == 4
    assert running[0].fraction_completed == pytest.approx(0.5)
    release.set()
    done = await task
    assert done.status == "completed"


async def test_failure_is_recorded_and_raised(cairn: Cairn) -> None:
    def work(ctx: JobContext) -> dict:
        raise NotFound("Namespace 'x' does not exist")

    with pytest.raises(NotFound):
        await cairn.jobs.run("test", SESSION, work, statement=STMT)
    (job,) = cairn.catalog.scan(Job)
    assert job.status == "failed"
    assert job.error_message == "Namespace 'x' does not exist"


async def test_a_bug_in_work_fails_the_job_not_the_server(cairn: Cairn) -> None:
    def work(ctx: JobContext) -> dict:
        raise ZeroDivisionError("boom")

    with pytest.raises(CairnError, match="internal error: ZeroDivisionError: boom"):
        await cairn.jobs.run("test", SESSION, work, statement=STMT)
    (job,) = cairn.catalog.scan(Job)
    assert job.status == "failed" and "ZeroDivisionError" in job.error_message


async def test_kill_stops_a_running_job_within_a_second(cairn: Cairn) -> None:
    started = threading.Event()

    def work(ctx: JobContext) -> dict:
        started.set()
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    job = await cairn.jobs.run("test", SESSION, work, statement=STMT, detached=True)
    assert job.status == "queued"
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    t0 = time.monotonic()
    killed = await cairn.jobs.kill(job.job_id)
    assert time.monotonic() - t0 < 1.0
    assert killed.status == "cancelled"
    assert cairn.catalog.get(Job, job.job_id).status == "cancelled"
    with pytest.raises(InvalidArgument):
        await cairn.jobs.kill(job.job_id)
    with pytest.raises(NotFound):
        await cairn.jobs.kill("job-doesnotexist")


async def test_waiting_request_gets_cancelled(cairn: Cairn) -> None:
    started = threading.Event()

    def work(ctx: JobContext) -> dict:
        started.set()
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    waiter = asyncio.create_task(cairn.jobs.run("test", SESSION, work, statement=STMT))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    (job,) = [j for j in cairn.catalog.scan(Job) if j.status == "running"]
    await cairn.jobs.kill(job.job_id)
    with pytest.raises(Cancelled):
        await waiter


async def test_jobs_the_servers_stop_cancels_say_so_and_a_kill_keeps_its_word(
        cairn: Cairn) -> None:
    cairn.config.jobs.max_concurrent = 1  # the third waits, queued, for the second's place
    cairn.jobs = JobRunner(cairn)
    started = threading.Event()

    def work(ctx: JobContext) -> dict:
        started.set()
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    killed = await cairn.jobs.run("test", SESSION, work, statement=STMT, detached=True)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    await cairn.jobs.kill(killed.job_id)
    started.clear()
    running = await cairn.jobs.run("test", SESSION, work, statement=STMT, detached=True)
    queued = await cairn.jobs.run("test", SESSION, work, statement=STMT, detached=True)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    assert cairn.catalog.get(Job, queued.job_id).status == "queued"
    cairn.jobs.stop_signal = "SIGTERM"
    await cairn.jobs.shutdown()
    rows = {j.job_id: (j.status, j.error_message) for j in cairn.catalog.scan(Job)}
    assert rows[killed.job_id] == ("cancelled", f"job {killed.job_id} was cancelled")
    stopped = ("cancelled", "cancelled: the server stopped (SIGTERM)")
    assert rows[running.job_id] == rows[queued.job_id] == stopped


async def test_bounded_pool_queues_the_rest(cairn: Cairn) -> None:
    cairn.jobs = JobRunner(cairn)  # max_concurrent = 2
    release = threading.Event()
    began = threading.Semaphore(0)

    def work(ctx: JobContext) -> dict:
        began.release()
        release.wait(60)
        return {}

    jobs = [await cairn.jobs.run("backup", SESSION, work, statement=STMT, detached=True)
            for _ in range(4)]
    # Two are running (a fixed 0.2 s was not always enough under load); a
    # third does not start while they hold the pool.
    loop = asyncio.get_running_loop()
    for _ in range(2):
        assert await loop.run_in_executor(None, began.acquire, True, 30)
    assert not await loop.run_in_executor(None, began.acquire, True, 0.3)
    statuses = sorted(cairn.catalog.get(Job, j.job_id).status for j in jobs)
    assert statuses == ["queued", "queued", "running", "running"]
    release.set()
    for _ in range(600):  # up to 30 s
        if all(cairn.catalog.get(Job, j.job_id).status == "completed" for j in jobs):
            break
        await asyncio.sleep(0.05)
    assert all(cairn.catalog.get(Job, j.job_id).status == "completed" for j in jobs)


def test_restart_marks_interrupted_jobs_failed_and_cleans(tmp_path: Path) -> None:
    cfg = Config()
    cat = Catalog(tmp_path / "catalog")
    cat.put(Job("job-a", "test", status="running", cleanup={"path": "x"}))
    cat.put(Job("job-b", "test", status="queued"))
    cat.put(Job("job-c", "test", status="completed"))
    cleaned: list[dict] = []
    state = Cairn(cfg, cat)
    runner = JobRunner(state)
    runner.cleanups["test"] = lambda job: cleaned.append(job.cleanup)
    failed = runner.recover()
    assert sorted(j.job_id for j in failed) == ["job-a", "job-b"]
    assert cat.get(Job, "job-a").status == "failed"
    assert cat.get(Job, "job-a").error_message == "interrupted by server restart"
    assert cat.get(Job, "job-c").status == "completed"
    assert {"path": "x"} in cleaned
    state.close()
    cat.close()


def test_a_job_killed_while_it_waited_for_a_lock_waits_for_nothing_after(
        tmp_path: Path) -> None:
    """A server killed (-9) while a restore's install waited for a busy table's
    lock, or was paused there: its row read `failed` and still `waiting_for`
    'the write lock of table app.b', a lock no one waits for."""
    cat = Catalog(tmp_path / "catalog")
    for job_id, status in (("job-a", "running"), ("job-b", "paused")):
        cat.put(Job(job_id, "restore", status=status,
                    waiting_for="the write lock of table app.b"))
    state = Cairn(Config(), cat)
    JobRunner(state).recover()
    for job_id in ("job-a", "job-b"):
        job = cat.get(Job, job_id)
        assert job is not None and job.status == "failed" and job.waiting_for is None, job
    state.close()
    cat.close()


def test_history_is_bounded_oldest_first(tmp_path: Path) -> None:
    cfg = Config()
    cfg.jobs.history_max_count = 3
    cat = Catalog(tmp_path / "catalog")
    for i in range(6):
        cat.put(Job(f"job-{i}", "test", status="completed",
                    finished_at=f"2099-01-0{i + 1}T00:00:00.000Z"))
    cat.put(Job("job-old", "test", status="failed", finished_at="2000-01-01T00:00:00.000Z"))
    cat.put(Job("job-live", "test", status="running"))
    state = Cairn(cfg, cat)
    removed = JobRunner(state).trim_history()
    left = sorted(j.job_id for j in cat.scan(Job))
    assert removed == 4
    assert left == ["job-3", "job-4", "job-5", "job-live"]
    state.close()
    cat.close()


async def test_work_runs_at_background_priority(cairn: Cairn) -> None:
    """A job's work, and the threads it starts, run at [jobs] background_nice;
    statements' threads (`cairn.run`) stay at normal priority."""
    assert cairn.config.jobs.background_nice == 10

    def work(ctx: JobContext) -> dict:
        child: list[int] = []
        t = threading.Thread(target=lambda: child.append(priority.thread_nice()))
        t.start()
        t.join()
        return {"own": priority.thread_nice(), "child": child[0]}

    job = await cairn.jobs.run("test", SESSION, work, statement=STMT)
    assert job.result == {"own": 10, "child": 10}
    assert await cairn.run(priority.thread_nice) == priority.thread_nice() == 0


async def test_killed_job_cleans_up_at_normal_priority(cairn: Cairn) -> None:
    """KILL JOB puts the job's threads back to normal priority (where the OS
    allows it), so its clean-up is not starved by busy neighbours; the next job
    runs lowered again."""
    from tests.storage.test_priority import may_raise_priority

    started = threading.Event()

    def work(ctx: JobContext) -> dict:
        started.set()
        try:
            while True:
                ctx.check_cancelled()
                time.sleep(0.01)
        except Cancelled:
            ctx.job.result = {"cleanup_nice": priority.thread_nice()}
            raise

    job = await cairn.jobs.run("test", SESSION, work, statement=STMT, detached=True)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    killed = await cairn.jobs.kill(job.job_id)
    assert killed.status == "cancelled"
    assert killed.result == {"cleanup_nice": 0 if may_raise_priority() else 10}
    nxt = await cairn.jobs.run("test", SESSION, lambda ctx: {"own": priority.thread_nice()},
                               statement=STMT)
    assert nxt.result == {"own": 10}


@pytest.mark.parametrize("enabled", [True, False])
async def test_heavy_jobs_hand_memory_back(cairn: Cairn, monkeypatch: pytest.MonkeyPatch,
                                           enabled: bool) -> None:
    """A backup, restore or verify frees its copy buffers when it ends: the
    runner purges (storage/allocator.py) after such a job, however it ended."""
    from storage import allocator

    calls: list[int] = []
    monkeypatch.setattr(allocator, "purge", lambda: calls.append(1) or True)
    cairn.config.storage.duckdb_release_memory = enabled
    await cairn.jobs.run("test", SESSION, lambda ctx: {}, statement=STMT, namespace="app")
    assert calls == []  # a light job: nothing

    def broken(ctx: JobContext) -> dict:
        raise InvalidArgument("no")

    with pytest.raises(InvalidArgument):
        await cairn.jobs.run("verify", SESSION, broken, statement=STMT, namespace="app")
    await cairn.jobs.run("backup", SESSION, lambda ctx: {}, statement=STMT, namespace="app")
    assert calls == ([1, 1] if enabled else [])


def _counting_scans(cat: Catalog) -> list[int]:
    """Count the catalog's scans of the jobs family from now on (`scan`
    reads through `scan_raw`)."""
    scans: list[int] = []
    scan_raw = cat.scan_raw

    def counted(family, *args, **kwargs):  # type: ignore[no-untyped-def]
        if family == Job.FAMILY:
            scans.append(1)
        return scan_raw(family, *args, **kwargs)

    cat.scan_raw = counted  # type: ignore[method-assign]
    return scans


def test_a_job_end_reads_the_history_only_when_a_trim_may_be_due(tmp_path: Path) -> None:
    """After a whole trim, job ends below the count limit decode nothing; the
    one that passes it trims, down to 1% under the limit."""
    cfg = Config()
    cfg.jobs.history_max_count = 200
    cat = Catalog(tmp_path / "catalog")
    for i in range(150):
        cat.put(Job(f"job-{i:04d}", "test", status="completed", finished_at=utcnow()))
    state = Cairn(cfg, cat)
    runner = JobRunner(state)
    assert runner.history.due()  # nothing known yet
    runner.trim_soon = lambda: runner.trim_history()  # type: ignore[method-assign]
    assert runner.trim_history() == 0
    scans = _counting_scans(cat)
    for i in range(150, 200):
        cat.put(Job(f"job-{i:04d}", "test", status="completed", finished_at=utcnow()))
        runner.job_ended()
    assert scans == [] and len(cat.scan(Job)) == 200
    scans.clear()
    cat.put(Job("job-0200", "test", status="completed", finished_at=utcnow()))
    runner.job_ended()  # 201 > 200: trimmed to 198
    assert len(scans) == 1
    left = sorted(j.job_id for j in cat.scan(Job))
    assert len(left) == 198 and left[0] == "job-0003"
    state.close()
    cat.close()


def test_a_trim_decodes_only_what_it_needs_and_reads_any_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole trim makes no `Job` of a well-formed record (a trim of 10,000
    held the GIL 70-130 ms doing so); a record msgspec refuses (a NaN) is
    still read, and trimmed by its age like any other."""
    cfg = Config()
    cfg.jobs.history_max_count = 50
    cfg.jobs.history_max_age_days = 1
    cat = Catalog(tmp_path / "catalog")
    old = "2000-01-01T00:00:00.000Z"
    for i in range(60):
        cat.put(Job(f"job-{i:04d}", "backup" if i % 2 else "flush", status="completed",
                    finished_at=utcnow(), result={"backup_id": f"bk-{i}", "files": i}))
    cat.put(Job("job-0100", "backup", status="failed", finished_at=old,
                fraction_completed=float("nan")))
    cat.put(Job("job-0101", "backup", status="completed", created_at=old, finished_at=None))
    cat.put(Job("job-0102", "backup", status="running", created_at=old))
    made: list[bytes] = []
    loads = Job.loads.__func__  # type: ignore[attr-defined]

    def counted(cls, raw):  # type: ignore[no-untyped-def]
        made.append(raw)
        return loads(cls, raw)

    monkeypatch.setattr(Job, "loads", classmethod(counted))
    state = Cairn(cfg, cat)
    runner = JobRunner(state)
    # Both old ones by age; then 60 finished > 50: the 10 + 0 oldest flushes.
    assert runner.trim_history() == 2 + 10
    assert len(made) == 1 and b"NaN" in made[0]
    monkeypatch.undo()
    left = {j.job_id for j in cat.scan(Job)}
    assert "job-0100" not in left and "job-0101" not in left and "job-0102" in left
    assert {f"job-{i:04d}" for i in range(0, 20, 2)}.isdisjoint(left)
    assert len(left) == 60 - 10 + 1
    state.close()
    cat.close()


def test_a_job_end_trims_when_the_oldest_left_is_past_the_age(tmp_path: Path) -> None:
    cfg = Config()
    cfg.jobs.history_max_age_days = 1
    cat = Catalog(tmp_path / "catalog")
    cat.put(Job("job-0", "test", status="completed", finished_at=utcnow()))
    state = Cairn(cfg, cat)
    runner = JobRunner(state)
    runner.trim_soon = lambda: runner.trim_history()  # type: ignore[method-assign]
    runner.trim_history()
    assert not runner.history.due()
    runner.history._oldest = "2000-01-01T00:00:00.000Z"  # as if a day and more had passed
    cat.put(Job("job-1", "test", status="completed", finished_at="2000-01-01T00:00:00.000Z"))
    runner.job_ended()
    assert [j.job_id for j in cat.scan(Job)] == ["job-0"]
    state.close()
    cat.close()


def test_kept_finds_the_kept_backups_among_the_history(cairn: Cairn) -> None:
    """resume.kept decodes only the rows that name kept_for_resume; what it
    returns is the same as checking every row."""
    from server import resume

    for i in range(50):
        cairn.catalog.put(Job(f"job-a{i:02d}", "backup", status="completed",
                              result={"backup_id": f"bk-{i}"}))
    cairn.catalog.put(Job("job-kept", "backup", status="failed",
                          result={"backup_id": "bk-k", resume.KEPT: True}))
    cairn.catalog.put(Job("job-released", "backup", status="failed",
                          result={"backup_id": "bk-r", resume.KEPT: False}))
    cairn.catalog.put(Job("job-other", "restore", status="failed",
                          result={resume.KEPT: True}))
    cairn.catalog.put(Job("job-text", "backup", status="failed",
                          statement="-- kept_for_resume", result=None))
    assert [j.job_id for j in resume.kept(cairn)] == ["job-kept"]


def test_kept_reads_the_history_once_then_only_the_jobs_it_names(cairn: Cairn) -> None:
    """Every BACKUP's end asks resume.kept: after its first answer it reads
    the few records it named, not the whole jobs family, and still sees each
    change: a job marked kept since (resume.keep, at start-up), one released,
    one trimmed."""
    from server import resume

    for i in range(50):
        cairn.catalog.put(Job(f"job-a{i:02d}", "backup", status="completed",
                              result={"backup_id": f"bk-{i}"}))
    for name in ("job-k1", "job-k2"):
        cairn.catalog.put(Job(name, "backup", status="failed",
                              result={"backup_id": name, resume.KEPT: True}))
    raw_scans: list[str] = []
    scan_raw = cairn.catalog.scan_raw

    def counted(family, *args, **kwargs):  # type: ignore[no-untyped-def]
        raw_scans.append(family)
        return scan_raw(family, *args, **kwargs)

    cairn.catalog.scan_raw = counted  # type: ignore[method-assign]
    assert [j.job_id for j in resume.kept(cairn)] == ["job-k1", "job-k2"]
    assert raw_scans == [Job.FAMILY]
    raw_scans.clear()

    # Marked later, while the record is still running (start-up's clean-up
    # puts it afterwards); one released; one trimmed.
    late = Job("job-late", "backup", status="running")
    cairn.catalog.put(late)
    cairn.kept_jobs.mark(late.job_id)
    assert [j.job_id for j in resume.kept(cairn)] == ["job-k1", "job-k2"]
    late.status, late.result = "failed", {"backup_id": "bk-late", resume.KEPT: True}
    cairn.catalog.put(late)
    cairn.catalog.put(Job("job-k1", "backup", status="failed",
                          result={"backup_id": "job-k1", resume.KEPT: False}))
    cairn.catalog.delete(Job, "job-k2")
    assert [j.job_id for j in resume.kept(cairn)] == ["job-late"]
    for _ in range(3):
        assert [j.job_id for j in resume.kept(cairn)] == ["job-late"]
    assert raw_scans == []


async def test_jobs_after_a_restart_with_the_clock_set_back_sort_newest_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last server's clock ran an hour ahead of this one's: a new job's id
    and created_at still sort above its jobs, so SHOW JOBS lists it first and
    the trim by count drops the old records, not the backup just taken."""
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    ahead = int(time.time() * 1000) + 3_600_000
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path)
    cfg.jobs.history_max_count = 2
    cat = Catalog(tmp_path / "catalog")
    old = [f"job-{ids._b32(ahead + i, 10)}0000aaaaaa" for i in range(2)]
    stamp = datetime.fromtimestamp(ahead / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for job_id in old:
        cat.put(Job(job_id, "test", status="completed", created_at=stamp[:-3] + "Z",
                    finished_at=stamp[:-3] + "Z"))
    state = Cairn(cfg, cat)
    state.jobs = JobRunner(state)
    state.jobs.recover()
    job = await state.jobs.run("test", SESSION, lambda ctx: None, statement=STMT)
    assert job.job_id > max(old) and job.created_at >= stamp[:-3] + "Z"
    state.jobs.trim_history()
    left = {j.job_id for j in cat.scan(Job)}
    assert job.job_id in left and old[0] not in left
    state.close()
    cat.close()
