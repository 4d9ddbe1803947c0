"""What every handler is given: the server's state (`Cairn`) and the caller (`Session`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from catalog import Catalog
from storage import jobproc, priority, stopping, timing
from storage.backup.targets import s3_key

from .answers import AnswerBytes
from .budget import KEPT_REQUESTS, Budget
from .config import Config
from .duckfaults import DuckFaults
from .metrics import Metrics
from .s3calls import TargetCalls
from .session import Session
from .threadshare import HOLDER, Threads
from .throttle import Statements

__all__ = ["Cairn", "KeptJobs", "Session"]

if TYPE_CHECKING:
    from storage.engine import Engine

    from .jobs import JobRunner

log = logging.getLogger("cairn")
T = TypeVar("T")
BACKGROUND_THREADS = 64


# How many times a one-row statement that met a table lock on the event loop
# waits for it and tries again there before it goes to a statement thread (a
# stream of statements on threads could take the lock first every time).
LOCK_TRIES = 4


async def until_free(lock: timing.TimedLock) -> None:
    """Until `lock` is let go (at once if it is free), without a thread."""
    loop = asyncio.get_running_loop()
    freed = loop.create_future()

    def done() -> None:
        if not freed.done():
            freed.set_result(None)

    def wake() -> None:  # on the releasing thread
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(done)

    if not lock.when_free(wake):
        await freed


class KeptJobs:
    """Which job records may say their backup's objects are kept for a resume
    (server/resume.py): a superset of them, each read again when asked, so a
    BACKUP's end reads those few records and not the whole job history (up to
    `[jobs] history_max_count`; scanning 10,000 records held the GIL ~8 ms a
    BACKUP, docs/performance.md). Unknown (`None`) until first read from the
    catalog. Only `resume.keep` marks a job (at start-up, for jobs a dead
    process left running), and the ids it marked stay named for good (a
    handful), so a read that raced the mark cannot leave one out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] | None = None
        self._marked: set[str] = set()

    def read(self) -> set[str] | None:
        with self._lock:
            return None if self._ids is None else self._ids | self._marked

    def store(self, ids: set[str]) -> None:
        with self._lock:
            self._ids = set(ids)

    def mark(self, job_id: str) -> None:
        with self._lock:
            self._marked.add(job_id)


class Cairn:
    """The server's state, built by `create_app` and closed with it."""

    def __init__(self, config: Config, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.data_dir = config.data_dir
        self.node_id = config.node_id
        # Held by statements that create or drop namespaces (and restore, which
        # makes one appear), so two of them never race on the same name.
        self.namespace_lock = threading.RLock()
        self._pool = ThreadPoolExecutor(
            max_workers=config.server.blocking_threads, thread_name_prefix="cairn-io"
        )
        self.threads = Threads(config.server.blocking_threads)  # role users' shares of them
        # Jobs (flush, backup, restore, verify, ...) run on their own threads, at
        # the background priority (storage/priority.py; `run_background` lowers
        # the thread for each piece of work): a running backup does not take the
        # CPUs from the statements clients wait for. A paused job keeps its
        # thread, hence the generous bound (threads start on demand).
        priority.set_background_nice(config.jobs.background_nice)
        jobproc.set_mode(config.jobs.job_process)
        self._background = ThreadPoolExecutor(
            max_workers=BACKGROUND_THREADS, thread_name_prefix="cairn-job")
        self.metrics = Metrics(self, slow_seconds=config.log.slow_request_seconds)
        # Requests running statements now (POST /api/sql, a pgwire query): a
        # job's transfer gives way to them between chunks (JobContext.give_way).
        self.statements = Statements(config.jobs.give_way_ms / 1000)
        self.engine: Engine = None  # type: ignore[assignment]  # set by create_app
        self.jobs: JobRunner = None  # type: ignore[assignment]  # set by create_app
        # (namespace, target, lag seconds) of each running archive, for /metrics;
        # set by create_app once the archiving service exists.
        self.archive_lags: Callable[[], list[tuple[str, str, float]]] | None = None
        self.kept_jobs = KeptJobs()  # resume.py
        self.target_calls = TargetCalls(config.backup.s3_deadline_seconds)
        # Statements that made DuckDB fail internally, and users who keep doing it.
        self.duck_faults = DuckFaults(config.server)
        # What all connections hold together (budget.py): request bodies and
        # pgwire messages being received; pgwire's prepared statements and portals.
        self.inflight = Budget(config.server.max_inflight_request_bytes,  # a body and what
                               2 * config.server.max_request_bytes)  # it decodes to fit
        self.prepared = Budget(config.pgwire.max_prepared_bytes_total,
                               KEPT_REQUESTS * config.server.max_request_bytes)
        self.answers = AnswerBytes(config.server.max_answer_bytes_total,  # answers.py
                                   2 * config.server.max_result_bytes,
                                   config.storage.duckdb_release_memory)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The one door for blocking work (RocksDB, DuckDB, pyarrow, files): it
        runs in the I/O thread pool so the event loop never stalls. A role
        user's work takes one of its places in the pool first (threadshare.py)."""
        call = functools.partial(fn, *args, **kwargs)
        held = HOLDER.get()
        if held is None:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        return await self.threads.run(self._pool, held, self.config.server.query_timeout_seconds,
                                      call, lambda until, s: self.engine.time_limit(s, until))

    async def run_target(self, target: str | None, fn: Callable[..., T], *args: Any) -> T:
        """`run` for work that reads the backup target a statement named: on an
        object-storage target, within `[backup] s3_deadline_seconds` (s3calls.py)."""
        key = None if target is None else s3_key(target, self.config.backup.targets)
        if key is None:
            return await self.run(fn, *args)
        return await self.target_calls.call(key, target or "", fn, *args)

    async def run_small(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run` for a one-row statement (a single-row INSERT, a point SELECT):
        first tried right here on the event loop, which saves the hand-off to a
        statement thread and back (and the two threads' tussle for the GIL),
        in the mode where it never waits (`timing.no_waiting`): a table lock
        another thread holds, or a need for DuckDB, stops it before anything
        is visible. A table lock is awaited here (no thread waits) and the
        statement tried again, up to LOCK_TRIES times; else it runs through
        `run`. Sent to a thread, it would hold the lock there while it waited
        for the GIL, so the next statements met the lock held and followed it:
        a self-sustaining mode that cost a fifth of the writes
        (docs/performance.md). Only with `[server] inline_statements = true`
        (the default)."""
        if self.config.server.inline_statements:
            for _ in range(LOCK_TRIES):
                try:
                    with timing.no_waiting():
                        return fn(*args, **kwargs)
                except timing.WouldWait as e:
                    if e.lock is None:
                        break
                    if e.limit is None:
                        await until_free(e.lock)
                        continue
                    try:  # the statement's time limit bounds its wait, as on a thread
                        await asyncio.wait_for(until_free(e.lock), e.limit[0] - time.monotonic())
                    except TimeoutError:
                        raise stopping.overdue(e.limit[1]) from None
        return await self.run(fn, *args, **kwargs)

    async def run_background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The door for a job's work: like `run`, on a background-priority thread."""
        loop = asyncio.get_running_loop()
        # Each piece of work lowers its thread again: KILL/PAUSE JOB may have
        # raised it (priority.raise_lowered_threads).
        return await loop.run_in_executor(
            self._background, functools.partial(priority.lowered(fn), *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._background.shutdown(wait=True, cancel_futures=True)
        self.statements.close()
