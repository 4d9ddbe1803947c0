"""A job's storage call that KILL JOB ends even when it runs in the server.

A job's repository work runs in a job process (storage/jobproc.py), which a
KILL ends by killing it. With job processes off (`[jobs] job_process =
"off"`), or for a throttled BACKUP (its rate is the server's, so it runs
here; a throttled VERIFY paces itself in its job process since
2026-12-07), the call ran on the job's own thread, and a call waiting on an
object store that drips its answers or lists forever held the job
`running` after KILL JOB for as long as the store kept it (pyarrow's calls
cannot be interrupted). Here such a call runs on a thread of its own
(storage/backup/stoppable.py): on KILL the job ends `cancelled` at once,
and the call, abandoned, stops at its next check; what it did after the job
ended is undone by `late` on its thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from catalog.errors import Cancelled
from storage import jobblame, jobproc
from storage.backup.stoppable import stoppable

from .jobcontext import JobContext

T = TypeVar("T")


def job_call(ctx: JobContext, kind: str, fn: Callable[..., T], /, *args: Any,
             here: bool = False, late: Callable[[], None] | None = None,
             blame: bool = False, **kwargs: Any) -> T:
    """`jobproc.call(ctx, fn, ...)`; on this server's threads against an
    object-storage target (`kind` "s3"), one a KILL or CANCEL abandons: the
    job's `left_call` is then set, so the clean-up after it does not wait on
    that target too (server/jobs.py). `blame`: `fn` checks files and takes
    `blamed` (storage/jobblame.py: run again when its process dies on one)."""
    if kind != "s3" or not (here or jobproc.mode() == "off"):
        run_call = jobblame.call if blame else jobproc.call
        return run_call(ctx, fn, *args, here=here, **kwargs)
    if blame:
        kwargs["blamed"] = jobblame.blamed()
    ended = threading.Event()

    def run() -> T:
        try:
            return jobproc.call(ctx, fn, *args, here=True, **kwargs)
        finally:
            ended.set()

    try:
        return stoppable(run, lambda: ctx.cancelled, f"job {ctx.job_id}", late=late)
    except Cancelled:
        if not ended.is_set():
            ctx.left_call = True
        raise
