"""The job runner, proven with test-only jobs: row before work, status moves,
progress while running, KILL, restart recovery, bounded history."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from catalog import Catalog, Job
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


SESSION = Session(user_id="tester", text="TEST JOB")


async def test_job_row_exists_before_work_and_completes(cairn: Cairn) -> None:
    seen: list[Job | None] = []

    def work(ctx: JobContext) -> dict:
        seen.append(cairn.catalog.get(Job, ctx.job_id))
        return {"answer": 42}

    job = await cairn.jobs.run("test", SESSION, work, namespace="app")
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

    task = asyncio.create_task(cairn.jobs.run("test", SESSION, work))
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
        await cairn.jobs.run("test", SESSION, work)
    (job,) = cairn.catalog.scan(Job)
    assert job.status == "failed"
    assert job.error_message == "Namespace 'x' does not exist"


async def test_a_bug_in_work_fails_the_job_not_the_server(cairn: Cairn) -> None:
    def work(ctx: JobContext) -> dict:
        raise ZeroDivisionError("boom")

    with pytest.raises(CairnError, match="internal error: ZeroDivisionError: boom"):
        await cairn.jobs.run("test", SESSION, work)
    (job,) = cairn.catalog.scan(Job)
    assert job.status == "failed" and "ZeroDivisionError" in job.error_message


async def test_kill_stops_a_running_job_within_a_second(cairn: Cairn) -> None:
    started = threading.Event()

    def work(ctx: JobContext) -> dict:
        started.set()
        while True:
            ctx.check_cancelled()
            time.sleep(0.01)

    job = await cairn.jobs.run("test", SESSION, work, detached=True)
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

    waiter = asyncio.create_task(cairn.jobs.run("test", SESSION, work))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    (job,) = [j for j in cairn.catalog.scan(Job) if j.status == "running"]
    await cairn.jobs.kill(job.job_id)
    with pytest.raises(Cancelled):
        await waiter


async def test_bounded_pool_queues_the_rest(cairn: Cairn) -> None:
    cairn.jobs = JobRunner(cairn)  # max_concurrent = 2
    release = threading.Event()

    def work(ctx: JobContext) -> dict:
        release.wait(5)
        return {}

    jobs = [await cairn.jobs.run("backup", SESSION, work, detached=True) for _ in range(4)]
    await asyncio.sleep(0.2)
    statuses = sorted(cairn.catalog.get(Job, j.job_id).status for j in jobs)
    assert statuses == ["queued", "queued", "running", "running"]
    release.set()
    for _ in range(100):
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

    job = await cairn.jobs.run("test", SESSION, work)
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

    job = await cairn.jobs.run("test", SESSION, work, detached=True)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    killed = await cairn.jobs.kill(job.job_id)
    assert killed.status == "cancelled"
    assert killed.result == {"cleanup_nice": 0 if may_raise_priority() else 10}
    nxt = await cairn.jobs.run("test", SESSION, lambda ctx: {"own": priority.thread_nice()})
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
    await cairn.jobs.run("test", SESSION, lambda ctx: {}, namespace="app")
    assert calls == []  # a light job: nothing

    def broken(ctx: JobContext) -> dict:
        raise InvalidArgument("no")

    with pytest.raises(InvalidArgument):
        await cairn.jobs.run("verify", SESSION, broken, namespace="app")
    await cairn.jobs.run("backup", SESSION, lambda ctx: {}, namespace="app")
    assert calls == ([1, 1] if enabled else [])
