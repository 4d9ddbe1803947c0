"""The job runner: every long operation (flush, backup, restore, verify, drop) is a job.

The job row is written before any work starts, so `system.jobs` shows it from
the first instant; status moves queued -> running -> completed | failed |
cancelled; progress counters are written while it runs (throttled). Work runs in
a thread and checks `ctx.check_cancelled()` between units of work, so KILL JOB
stops it within a second (a queued job stops waiting for its slot at once).
PAUSE JOB (backups and restores only) parks the work at its next check, with
everything it holds (snapshot, lock, stored objects, copied files) and gives its
place in the pool back; RESUME JOB takes a place again and the work goes on
where it stopped. A job found queued/running/paused at start-up belonged to a
dead process: it is marked failed and its registered cleanup is run (one that
cannot reach its target stays pending and is retried: recovery.py). History is
trimmed to `[jobs] history_max_age_days` / `history_max_count` at start-up,
after jobs finish and every minute. On SIGTERM `shutdown` cancels every job
(app.py runs it before aiohttp waits for the requests in flight)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from catalog import Job, utcnow
from catalog.diskerrors import DataDirUnavailable
from catalog.errors import CairnError, Cancelled, InvalidArgument, NotFound, Unavailable
from catalog.ids import id_time, new_id
from storage import allocator, jobproc, priority

from . import logs, recovery
from .history import ACTIVE, PENDING, History
from .jobcontext import WAIT_SLICE, JobContext, JobHost, Stopped
from .session import Session
from .threadshare import HOLDER

__all__ = ["ACTIVE", "JobContext", "JobHost", "JobRunner", "Work"]

log = logging.getLogger("cairn.jobs")

HEAVY = {"backup", "restore", "verify", "drop_backup", "prune"}
PAUSABLE = ("backup", "restore")
TRIM_PERIOD = 60.0  # seconds between history trims while no job finishes
# How long KILL JOB waits for the job to stop: past the grace a job process
# has before it is killed (jobproc.KILL_GRACE), and its clean-up after.
KILL_WAIT = jobproc.KILL_GRACE + 2.0

Work = Callable[["JobContext"], dict[str, Any]]
Cleanup = recovery.Cleanup


class JobRunner:
    def __init__(self, cairn: JobHost) -> None:
        self.cairn = cairn
        self._contexts: dict[str, JobContext] = {}
        self._tasks: dict[str, asyncio.Task[Job]] = {}
        limit = cairn.config.jobs.max_concurrent
        self._heavy = asyncio.Semaphore(limit)
        self._light = asyncio.Semaphore(limit)
        self.cleanups: dict[str, Cleanup] = {}
        # After a job failed or was cancelled: its target's temp files that
        # processes of this server now gone left (repos.sweep_tmp; backups.py).
        self.sweep: Cleanup | None = None
        self.pending: set[str] = set()  # jobs whose clean-up is pending (recovery.py)
        self._trimming: asyncio.Task[None] | None = None
        self._trim_again = False
        self._trim_refused: str | None = None  # why the last trim could not write, said once
        self.history = History(cairn)
        self._stopping = False
        self.stop_signal: str | None = None  # the signal that stops the server (cli.py)

    # --- start-up ------------------------------------------------------

    def recover(self) -> list[Job]:
        """Mark jobs of a dead process failed and undo what they half-wrote
        (recovery.py: a clean-up that cannot reach its target stays pending)."""
        return recovery.recover(self)

    async def retry_loop(self) -> None:
        """Forever: pending clean-ups tried again every minute."""
        await recovery.retry_loop(self)

    def trim_history(self) -> int:
        """Keep job history bounded (history.py): drop finished jobs past the age
        or count limit; returns how many went."""
        return self.history.trim()

    def job_ended(self) -> None:
        """A job's finished row is written: trim if that may be due."""
        self.history.ended()
        if self.history.due():
            self.trim_soon()

    def trim_soon(self) -> None:
        """Trim history in the background; one trim at a time, none skipped."""
        if self._trimming is not None and not self._trimming.done():
            self._trim_again = True
            return
        self._trimming = asyncio.create_task(self._trim())

    async def _trim(self) -> None:
        self._trim_again = True
        while self._trim_again:
            self._trim_again = False
            try:
                await self.cairn.run(self.trim_history)
                self._trim_refused = None
            except DataDirUnavailable as exc:  # a full disk: one line, not a trace a trim
                if self._trim_refused is None:
                    log.warning("trimming job history waits until the data directory takes "
                                "writes again: %s", exc.message)
                self._trim_refused = exc.message
            except Exception:  # history trimming must never hurt a job
                log.exception("trimming job history failed")

    async def trim_loop(self, period: float = TRIM_PERIOD) -> None:
        """Forever: trim history now and then, so old jobs expire while idle."""
        while True:
            await asyncio.sleep(period)
            self.trim_soon()

    # --- running -------------------------------------------------------

    async def run(
        self,
        job_type: str,
        session: Session,
        work: Work,
        *,
        namespace: str | None = None,
        target: str | None = None,
        backup_id: str | None = None,
        statement: str,
        detached: bool = False,
    ) -> Job:
        """Record a job, run `work(ctx)` in a thread, and (unless detached) wait.
        `statement` is what the row shows: the statement printed back from its
        parse (`backups.redacted`), never the text the client sent (a comment of
        9 MiB in a FLUSH was stored, and read by every poll of system.jobs).

        Raises the work's CairnError if it failed and `Cancelled` if it was killed;
        UNAVAILABLE once the server is stopping."""
        if self._stopping:
            raise Unavailable("the server is stopping; no new job is started")
        job_id = new_id("job")
        job = Job(
            job_id=job_id,
            created_at=id_time(job_id),  # sorts as the id does (ids.floor_after)
            job_type=job_type,
            namespace=namespace,
            target=target,
            backup_id=backup_id,
            statement=statement,
            user_id=session.user_id,
            node_id=self.cairn.node_id,
        )
        await self.cairn.run(self.cairn.catalog.put, job)
        ctx = JobContext(self, job)
        self._contexts[job.job_id] = ctx
        task = asyncio.create_task(self._drive(ctx, work), name=job.job_id)
        self._tasks[job.job_id] = task
        if session.on_job is not None:
            session.on_job(job.job_id)
        if detached:
            return job
        with self.cairn.statements.waiting_for_job():
            done = await asyncio.shield(task)
        if done.status == "completed":
            return done
        if done.status == "cancelled":
            raise Cancelled(done.error_message or f"job {done.job_id} was cancelled")
        raise ctx.error or CairnError(done.error_message or "job failed")

    async def _drive(self, ctx: JobContext, work: Work) -> Job:
        HOLDER.set(None)  # this task's own copy: a job's work is the server's (threadshare.py)
        job = ctx.job
        sem = self._heavy if job.job_type in HEAVY else self._light
        ctx.sem = sem
        ctx.holding = await self._slot(sem, ctx)
        try:
            await self._work(ctx, work, ctx.holding)
            job.finished_at = utcnow()
        finally:
            if ctx.holding:  # a paused job gave its place back, and took one again
                ctx.holding = False
                sem.release()  # only now: the next job starts after this one finished
        if job.status != "completed":
            await self._sweep(ctx)
        if job.cleanup.get(PENDING):  # left to recovery.py (backup_run.unread)
            self.pending.add(job.job_id)
        else:
            job.cleanup = {}
        seconds = time.monotonic() - ctx.started if ctx.started is not None else None
        self.cairn.metrics.job_ended(job, seconds)
        logs.job_ended(job, seconds)
        # What a heavy job's transfers and snapshots freed (copy buffers in
        # its threads' malloc arenas) goes back to the OS, on the same trip
        # to a statement thread as the job's last row (each trip is a take
        # of the GIL beside the statements on the event loop).
        purge = self.cairn.config.storage.duckdb_release_memory and job.job_type in HEAVY

        def finish() -> None:
            try:
                self.cairn.catalog.keep(job)  # in memory while the disk is full
            finally:
                if purge:
                    allocator.purge()

        try:
            await self.cairn.run(finish)
        finally:
            self._contexts.pop(job.job_id, None)
            self._tasks.pop(job.job_id, None)
            self.job_ended()
        return job

    async def _work(self, ctx: JobContext, work: Work, holding: bool) -> None:
        """Run the work (given a place in the pool) and record how it ended."""
        job = ctx.job
        try:
            if not holding:
                raise Cancelled(f"job {job.job_id} was cancelled before it started")
            job.status = "running"
            job.started_at = utcnow()
            ctx.started = time.monotonic()
            self.cairn.metrics.job_started(job)
            logs.job_started(job)

            def started(ctx: JobContext) -> dict[str, Any]:
                # The row says running from the job's thread, right before its work: one
                # trip to a thread, not two (a take of the GIL beside the event loop each).
                ctx.set()
                return work(ctx)

            job.result = await self.cairn.run_background(started, ctx)
            job.status = "completed"
            job.fraction_completed = 1.0
            job.error_message = ctx.finding
        except Cancelled as exc:
            job.status = "cancelled"
            job.error_message = ctx.cancel_reason or exc.message
        except CairnError as exc:
            ctx.error = exc
            job.status = "failed"
            job.error_message = exc.message
        except Exception as exc:
            ctx.error = logs.job_failure(job, exc, self.cairn.config.data_dir)
            job.status = "failed"
            job.error_message = ctx.error.message
        finally:
            answered_rows(job)

    async def _sweep(self, ctx: JobContext) -> None:
        """A failed or cancelled job's own writes removed their temp files, but
        a job process killed mid-write (the OOM killer) left its half-written
        one in the target: it goes now, not at the next start. Not after a
        target that cannot be reached (the sweep could not reach it either), nor
        after a kill left a call waiting on it (the call's `late` cleans up)."""
        if self.sweep is None or ctx.left_call or (isinstance(ctx.error, Unavailable)
                                                   and not isinstance(ctx.error, jobproc.Lost)):
            return
        try:
            await self.cairn.run(self.sweep, ctx.job)
        except Exception as exc:  # a leftover temp file must not change how the job ended
            log.warning("removing temp files of job %s from %s failed: %s",
                        ctx.job.job_id, ctx.job.target, exc)

    @staticmethod
    async def _slot(sem: asyncio.Semaphore, ctx: JobContext) -> bool:
        """Wait for a place in the pool; False if the job is cancelled first."""
        acquire = asyncio.ensure_future(sem.acquire())
        stopped = asyncio.ensure_future(ctx.wait_cancelled())
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not acquire.done():
            acquire.cancel()
            try:
                await acquire
            except asyncio.CancelledError:
                return False
        if ctx.cancelled:
            sem.release()
            return False
        return True

    async def kill(self, job_id: str) -> Job:
        """Cancel a queued or running job and wait (up to KILL_WAIT s) for it to
        stop; the cancelled job. INVALID_ARGUMENT when it had ended, or ends
        completed or failed meanwhile (the cancel came too late: its work did
        not check again); UNAVAILABLE when it still runs after the wait (a
        step no check interrupts: a drop deleting objects). Before, both were
        200 with the job's status ("completed", "running"). A kill that stopped
        the job past its point of no return (jobcontext.Stopped) answers the
        job, `failed`: until 2026-12-06 it said `cancelled` for a backup that
        had landed."""
        job = await self.cairn.run(self.cairn.catalog.get, Job, job_id)
        if job is None:
            raise NotFound(f"Job '{job_id[:100]}' does not exist")
        ctx = self._contexts.get(job_id)
        if ctx is None or job.status not in ACTIVE:
            raise InvalidArgument(f"Job '{job_id}' is {job.status}, not running")
        ctx.cancel()
        # The job cleans up at normal priority, however busy the machine is.
        priority.raise_lowered_threads()
        task = self._tasks.get(job_id)
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=KILL_WAIT)
        done = ctx.job
        if done.status == "cancelled" or isinstance(ctx.error, Stopped):
            # Stopped: the kill stopped the job past its point of no return (a
            # BACKUP's keep_last): `failed`, what it made stays (its message).
            return done
        if done.status not in ACTIVE:
            raise InvalidArgument(f"Job '{job_id}' {done.status} before the kill could stop it")
        raise Unavailable(
            f"Job '{job_id}' has not stopped {KILL_WAIT:g} s after the kill: it is in a "
            "step that cannot be interrupted (such as a drop deleting a backup's objects); "
            "it ends by itself, cancelled at its next check or completed if that step was "
            "its last (see system.jobs)")

    async def pause(self, job_id: str) -> Job:
        """Ask a running backup or restore to pause; wait (up to 5 s) until it has.
        INVALID_ARGUMENT when it ends meanwhile, as KILL answers."""
        job = await self.cairn.run(self.cairn.catalog.get, Job, job_id)
        if job is not None and job.job_type not in PAUSABLE:
            raise InvalidArgument(
                f"Job '{job_id}' is a {job.job_type} job; only backup and restore jobs "
                "can be paused (KILL JOB cancels any job)")
        job, ctx = await self._live(job_id)
        if not ctx.ask_pause():  # its status now, not the row read before
            raise InvalidArgument(
                f"Job '{job_id}' is {ctx.job.status}; only a running job can be paused")
        priority.raise_lowered_threads()
        done = await self._await_status(job_id, ctx, lambda s: s != "running")
        if done.status not in ACTIVE:  # its work had passed its last check (was 200)
            raise InvalidArgument(f"Job '{job_id}' {done.status} before it could be paused")
        return done

    async def resume(self, job_id: str) -> Job:
        """Let a paused job go on; returns once it has left `paused` (or after 5 s).
        INVALID_ARGUMENT when it was cancelled meanwhile."""
        job, ctx = await self._live(job_id, needs="paused")
        if not ctx.ask_resume():
            raise InvalidArgument(f"Job '{job_id}' is {ctx.job.status}, not paused")
        # A PAUSE after it (the flag set again) keeps the job paused: so it says.
        done = await self._await_status(
            job_id, ctx, lambda s: s != "paused" or ctx.pause_requested)
        if done.status == "cancelled":  # a KILL (or the server's stop) came first (was 200)
            raise InvalidArgument(f"Job '{job_id}' cancelled before it could be resumed")
        return done

    async def _live(self, job_id: str, needs: str = "running") -> tuple[Job, JobContext]:
        job = await self.cairn.run(self.cairn.catalog.get, Job, job_id)
        if job is None:
            raise NotFound(f"Job '{job_id[:100]}' does not exist")
        ctx = self._contexts.get(job_id)
        if ctx is None or job.status not in ACTIVE:
            raise InvalidArgument(f"Job '{job_id}' is {job.status}, not {needs}")
        return job, ctx

    async def _await_status(self, job_id: str, ctx: JobContext,
                            reached: Callable[[str], bool]) -> Job:
        deadline = time.monotonic() + 5.0
        task = self._tasks.get(job_id)
        while not reached(ctx.job.status) and time.monotonic() < deadline:
            if task is not None and task.done():
                break
            await asyncio.sleep(WAIT_SLICE)
        return ctx.job

    def active(self) -> list[str]:
        return list(self._tasks)

    def live(self) -> list[Job]:
        """Every job queued, running or paused now (from any thread)."""
        return [ctx.job for ctx in list(self._contexts.values())]

    def active_jobs(self) -> list[tuple[str, str]]:
        """(job_type, status) of every job queued or running now (for /metrics)."""
        return [(ctx.job.job_type, ctx.job.status) for ctx in list(self._contexts.values())]

    def is_cancelled(self, job_id: str) -> bool:
        """Whether KILL JOB (or shutdown) has asked this job to stop."""
        ctx = self._contexts.get(job_id)
        return ctx is not None and ctx.cancelled

    def ask_to_stop(self, job_id: str) -> None:
        """Ask a job to stop, as KILL JOB does, without waiting: one asked before its
        task first ran (a pgwire statement cancelled before it started the job)
        ends `cancelled` having done nothing."""
        ctx = self._contexts.get(job_id)
        if ctx is not None:
            ctx.cancel()

    def pause_requested(self, job_id: str) -> bool:
        """Whether PAUSE JOB has asked this job to pause (and no RESUME since)."""
        ctx = self._contexts.get(job_id)
        return ctx is not None and ctx.pause_requested

    def stop_accepting(self) -> None:
        """The server is stopping: `run` refuses new jobs from now on."""
        self._stopping = True

    async def shutdown(self) -> None:
        """Cancel every queued, running or paused job and wait for them to stop
        (server stop). Their error says the server stopped them: it read as a
        KILL JOB's ("operation cancelled")."""
        self._stopping = True
        reason = "cancelled: the server stopped" + (
            f" ({self.stop_signal})" if self.stop_signal else "")
        for ctx in list(self._contexts.values()):
            ctx.cancel(reason)
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        if self._trimming is not None:
            await asyncio.wait([self._trimming], timeout=10.0)


def answered_rows(job: Job) -> None:
    """A job's `rows` is its answer's `rows` once it has one: a BACKUP's or
    RESTORE's live rows (what a query of its tables sees), a set's summed,
    a FLUSH's rows written. Also when a step after the work landed failed (a
    keep_last after its backup: the result was recorded). Until 2026-12-07 a
    backup's and a restore's job counted row versions (every UPDATE and
    DELETE adds one) where the answer counted live rows: 9 against 4."""
    rows = job.result.get("rows") if isinstance(job.result, dict) else None
    if isinstance(rows, int) and not isinstance(rows, bool):
        job.rows = rows
