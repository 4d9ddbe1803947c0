"""A flush job whose files landed says so, whatever happens after.

A flush's job row is put in the very catalog batch that installs its files
(storage/flush.py `on_install`), with `cleanup.flushed`: what the job has
flushed up to and with that install, and how many of its tables are done.
Should the server die before the job's end is recorded (a kill -9 while the
flush let go of its memory, or while an ALTER it held up ran), start-up finds
the row running (recovery.py) and runs `landed`: a job whose last table's
install committed is `completed` with that result, as the job would have
been; one that got part of the way is `failed` saying how far. It was
`failed`, "interrupted by server restart", with its file installed and read."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catalog import Batch, Job
from catalog.diskerrors import from_oserror
from catalog.errors import CairnError

from .jobcontext import JobContext
from .recovery import INTERRUPTED

FLUSHED = "flushed"


def marking(ctx: JobContext, total: dict[str, int], all_rows: int, done: int,
            tables: int) -> Callable[[Batch, dict[str, int]], None]:
    """The `on_install` of the job's flush of its `done`-th of `tables` tables,
    `total` and `all_rows` what its earlier tables flushed."""
    def mark(batch: Batch, out: dict[str, int]) -> None:
        result = {"tables": total["tables"] + 1,
                  **{k: total[k] + out[k] for k in ("rows", "files", "bytes")}}
        if all_rows + out["all_rows"] != result["rows"]:
            result["all_rows"] = all_rows + out["all_rows"]
        ctx.record_in(batch, cleanup={FLUSHED: {"result": result, "done": done,
                                                "tables": tables}})
    return mark


def landed(job: Job) -> None:
    """Start-up's clean-up of a flush job left running (recovery.py): what
    its last committed install says it did."""
    mark: Any = job.cleanup.get(FLUSHED)
    if not isinstance(mark, dict):
        return  # it died before it installed anything: nothing landed
    result = dict(mark["result"])
    job.rows, job.files_done, job.bytes_done = result["rows"], result["files"], result["bytes"]
    job.files_total, job.bytes_total = job.files_done, job.bytes_done  # as the job's own end
    if mark["done"] >= mark["tables"]:
        job.status, job.error_message, job.result = "completed", None, result
        job.fraction_completed = 1.0
        return
    job.error_message = (
        f"{INTERRUPTED} after flushing {mark['done']} of its {mark['tables']} tables "
        f"({result['rows']} rows to {result['files']} file(s), installed); the rows of "
        "the others stay buffered")


def partly(exc: Exception, flushed: list[str], total: dict[str, int], tables: int,
           data_dir: Path) -> Exception:
    """The error of a flush of `tables` tables that failed (or was cancelled)
    after it had flushed and installed those `flushed` (`total` what they
    held): the error saying so, its code kept. A FLUSH ALL TABLES refused at
    a later table (a full disk) said only the refusal, as if it had flushed
    nothing. An error that is no CairnError nor the disk's (a bug) is `exc`."""
    error = exc if isinstance(exc, CairnError) else from_oserror(data_dir, exc)
    if error is None or not flushed:
        return exc
    message = (f"{error.message}; it had flushed {len(flushed)} of its {tables} tables first "
               f"({', '.join(flushed)}: {total['rows']} rows to {total['files']} file(s), "
               "installed); the rows of the others stay buffered")
    new = copy.copy(error)
    new.message, new.args = message, (message,)
    return new
