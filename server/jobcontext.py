"""A job's handle in its worker thread: cancel and pause flags, progress
counters written to the job's row, fault points (server/jobs.py runs jobs)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from catalog import Batch, Catalog, Job, utcnow
from catalog.errors import CairnError, Cancelled, Unavailable

from . import faults
from .config import Config
from .metrics import Metrics
from .throttle import Statements

log = logging.getLogger("cairn.jobs")

WAIT_SLICE = 0.02  # seconds between looks at the cancel flag while paused
PROGRESS_INTERVAL = 0.05  # seconds between progress writes to the catalog

T = TypeVar("T")


class Stopped(CairnError):
    """A cancel (KILL JOB, a pgwire cancel, the server's stop) that stopped a
    job after its point of no return: a BACKUP's keep_last once its backup had
    landed, a drop's prune once its manifest had gone. What the job made
    stays, so it ends `failed` (keeping its result), not `cancelled`, and the
    statement waiting on it gets this: 503 UNAVAILABLE, not 409 CANCELLED
    (over pgwire 57014: a statement that did not take effect)."""

    code, status = Unavailable.code, Unavailable.status


class JobHost(Protocol):
    """What the runner needs of the server's state (`state.Cairn`)."""

    config: Config
    catalog: Catalog
    node_id: str
    metrics: Metrics
    statements: Statements

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    async def run_background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


class Runner(Protocol):
    """What a context needs of its runner (`jobs.JobRunner`)."""

    cairn: JobHost


class JobContext:
    """Handed to a job's work function (in a worker thread)."""

    def __init__(self, runner: Runner, job: Job) -> None:
        self._runner = runner
        self.job = job
        self.job_id = job.job_id
        self._cancel = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()  # the same, for the event loop (a queued job)
        self._last_write = 0.0
        self._lock = threading.Lock()
        self.error: CairnError | None = None
        self._pause = threading.Event()  # PAUSE JOB asked; cleared by RESUME JOB
        # PAUSE's and RESUME's look at the status and flag, and a paused job
        # leaving `paused`: one at a time (ask_pause, ask_resume, _await_resume).
        self._state = threading.Lock()
        self.sem: asyncio.Semaphore | None = None  # the pool this job runs in
        self.holding = False  # whether it holds a place in that pool
        self._away = False  # paused: its place given back, not yet taken again
        self._place = threading.Lock()  # one of its threads gives or takes the place at a time
        self.started: float | None = None  # time.monotonic() when it began running
        self.finding: str | None = None  # what a completed job found wrong (found_invalid)
        self.cancel_reason: str | None = None  # its error_message when cancelled, if not KILL's
        self.left_call = False  # a KILL left a call of its waiting on its target (jobcalls.py)
        self.landed = False  # past its point of no return: its row is kept while the disk is full

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self, reason: str | None = None) -> None:
        """Ask the job to stop; `reason` becomes its error_message (the server's
        stop), else the work's own word (KILL JOB: "… was cancelled")."""
        if reason is not None and not self._cancel.is_set():
            self.cancel_reason = reason
        self._cancel.set()
        self._loop.call_soon_threadsafe(self._stopped.set)

    def past_return(self, exc: CairnError) -> CairnError:
        """`exc` met after the job's point of no return: a cancel becomes
        `Stopped`, saying what stopped it; anything else stays as it is."""
        if not isinstance(exc, Cancelled):
            return exc
        return Stopped(self.cancel_reason or "KILL JOB stopped it")

    def land(self) -> None:
        """The job passed its point of no return (a backup's manifest landed,
        a restore's or a flush's install committed, a drop's manifests went):
        from now on a data directory that refuses the job's row (a full disk)
        does not fail it, as what it did stays. The row is kept in memory
        (`Catalog.keep`: reads see it, the next write that succeeds writes
        it) and the job ends as its work does. A restart before the disk takes
        writes again finds the row the disk has, running, and start-up's
        recovery says what the job did, as after a crash there."""
        self.landed = True

    async def wait_cancelled(self) -> None:
        """Return once the job is cancelled (on the event loop)."""
        await self._stopped.wait()

    def found_invalid(self, what: str, errors: list[str]) -> None:
        """The work ran to its end and found `what` not valid (a VERIFY): the job
        stays `completed`, as its result row is the statement's answer, and its
        error_message says so (a corrupt backup's verify read as a success in
        system.jobs, the log and /metrics)."""
        more = re.fullmatch(r"\.\.\. and (\d+) more errors", errors[-1]) if errors else None
        count = len(errors) - 1 + int(more[1]) if more else len(errors)
        first = f"; first: {errors[0]}" if errors else ""
        self.finding = f"{what} is not valid: {count} error(s){first}"

    def check_cancelled(self) -> None:
        """Raise Cancelled if the job was killed; park here while it is paused."""
        if (self._pause.is_set() or self._away) and not self._cancel.is_set():
            self._paused()
        if self._cancel.is_set():
            raise Cancelled(f"job {self.job_id} was cancelled")

    @property
    def pause_requested(self) -> bool:
        return self._pause.is_set()

    def give_way(self) -> None:
        """Between two chunks of a transfer: wait (briefly) while statements
        run (server/throttle.py `Statements`)."""
        self._runner.cairn.statements.give_way()

    def ask_pause(self) -> bool:
        """PAUSE JOB: set the pause flag of a running or paused job (True); False,
        nothing set, for any other status. One look-and-set under the state
        lock: a PAUSE that saw `paused` while a RESUME had just cleared the
        flag returned without setting it, answered `paused`, and the job ran on."""
        with self._state:
            if self.job.status not in ("running", "paused"):
                return False
            self._pause.set()
            return True

    def ask_resume(self) -> bool:
        """RESUME JOB: clear the flag of a paused job, or of one asked to pause
        (True); False, nothing cleared, for any other."""
        with self._state:
            if self.job.status != "paused" and not self._pause.is_set():
                return False
            self._pause.clear()
            return True

    def _paused(self) -> None:
        """In a worker thread: status `paused`, the pool place given back, wait
        for RESUME (or KILL), then wait for a place again (status `queued`).
        A job may park several threads here (a restore to a time: its copy and
        its replay): the first gives the place back, the first to wake takes
        it again while the others wait for it to have it, so the job gives
        back and takes back one place however many park. Before, each took a
        place on RESUME and one was never given back: two PAUSE/RESUME of such
        a restore (max_concurrent 2) left every later job queued for ever."""
        with self._place:  # (a thread that waited here while another took it: not paused)
            if not self._away and self._pause.is_set():
                self._away = True
                self.show(status="paused")
                log.info("job %s paused", self.job_id)
                self._give_back()
        if not self._await_resume():
            return
        with self._place:  # the thread taking the place ends its wait on a KILL
            if not self._away or self._cancel.is_set():
                return
            self._take_place()
            if not self._cancel.is_set():
                self._away = False
                self.show(status="running")
                log.info("job %s resumed", self.job_id)

    def _await_resume(self) -> bool:
        """Wait while paused: True once RESUMEd (the row then says `queued`),
        False once KILLed. It leaves under the state lock: a PAUSE that came
        after the RESUME (its flag set again) keeps it here."""
        while True:
            while self._pause.is_set() and not self._cancel.wait(WAIT_SLICE):
                pass
            if self._cancel.is_set():
                return False
            with self._state:  # held for no write: PAUSE waits on it on the event loop
                if self._pause.is_set():
                    continue
                with self._lock:  # the first of its parked threads to leave says so
                    first = self.job.status == "paused"
                    if first:
                        self.job.status = "queued"
            if first:
                self.show()  # the row says so
            return True

    def _give_back(self) -> None:
        if self.sem is not None and self.holding:
            self.holding = False
            self._loop.call_soon_threadsafe(self.sem.release)

    def _take_place(self) -> None:
        """Wait (in the thread) for a place in the pool, or for a KILL."""
        if self.sem is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.sem.acquire(), self._loop)
        while True:
            try:
                fut.result(timeout=WAIT_SLICE)
                self.holding = True
                return
            except concurrent.futures.TimeoutError:
                if self._cancel.is_set():
                    fut.cancel()
                    concurrent.futures.wait([fut])
                    if not fut.cancelled() and fut.exception() is None:
                        self._loop.call_soon_threadsafe(self.sem.release)
                    return

    @property
    def armed(self) -> frozenset[str]:
        """The fault points tests have armed (a job process sends back only those)."""
        return faults.armed()

    def fault(self, point: str, **info: Any) -> None:
        """A named fault point of this job (server/faults.py)."""
        faults.hit(point, job_id=self.job_id, **info)

    def progress(
        self,
        *,
        files_done: int | None = None,
        files_total: int | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        rows: int | None = None,
        fraction: float | None = None,
        force: bool = False,
    ) -> None:
        """Update counters; the catalog row is rewritten at most every 50 ms.
        `fraction` defaults to bytes_done/bytes_total, else files_done/files_total.
        Never fails on a full data directory (the row is kept in memory)."""
        with self._lock:
            j = self.job
            for name, value in (
                ("files_done", files_done),
                ("files_total", files_total),
                ("bytes_done", bytes_done),
                ("bytes_total", bytes_total),
                ("rows", rows),
            ):
                if value is not None:
                    setattr(j, name, int(value))
            if fraction is None:
                if j.bytes_total:
                    fraction = j.bytes_done / j.bytes_total
                elif j.files_total:
                    fraction = j.files_done / j.files_total
            if fraction is not None:
                # Never past 0.99 while running, never backwards.
                j.fraction_completed = max(j.fraction_completed, min(0.99, max(0.0, fraction)))
            now = time.monotonic()
            if force or now - self._last_write >= PROGRESS_INTERVAL:
                self._last_write = now
                j.alive_at = utcnow()
                # Counters for the eye: a data directory that refuses them (a
                # full disk) keeps them in memory, and the work goes on to the
                # write it needs (an install, a record) or ends. A refused
                # progress write failed the job in the middle of its work: on
                # a job process's progress, while the process went on and
                # published a backup that its `failed` job never recorded.
                self._runner.cairn.catalog.keep(j)

    def record_in(self, batch: Batch, **fields: Any) -> None:
        """Record fields on the job row in `batch`, committed with what it
        installs (a flush's files: the row then says the work landed)."""
        with self._lock:
            for name, value in fields.items():
                setattr(self.job, name, value)
            batch.put(self.job)

    def set(self, *, durable: bool = False, **fields: Any) -> None:
        """Record fields on the job row at once (backup_id, target, cleanup, …).
        Past the point of no return (`land`) a disk that refuses the row keeps
        it in memory, unless `durable`: what a restart's recovery needs on
        disk before the job goes on (a keep_last's clean-up: sweep the
        target) fails the step instead."""
        with self._lock:
            for name, value in fields.items():
                setattr(self.job, name, value)
            self.job.alive_at = utcnow()
            catalog = self._runner.cairn.catalog
            (catalog.keep if self.landed and not durable else catalog.put)(self.job)

    def waiting(self, what: str | None) -> None:
        """The work waits for `what` (a busy table's lock, storage/lockset.py),
        None once it no longer does: the row's `waiting_for`, for the eye (an
        operator sees why the job stalls), kept in memory as `show`'s are."""
        self.show(waiting_for=what)

    def show(self, **fields: Any) -> None:
        """Record a PAUSE's or RESUME's status on the job row, kept in memory
        while the data directory refuses writes (a full disk): it is for the
        eye, as progress is (a restart finds a paused job as a running one).
        Refused, it failed the job at its pause, PAUSE JOB answering
        `paused` for a job that then read `failed` ("no space left …")."""
        with self._lock:
            for name, value in fields.items():
                setattr(self.job, name, value)
            self.job.alive_at = utcnow()
            self._runner.cairn.catalog.keep(self.job)
