"""Job history trimming: finished jobs past `[jobs] history_max_age_days`, and
beyond `history_max_count` the oldest flush jobs, then the oldest of the rest,
are removed (docs/sql.md, "History"); never a failed job that still holds
something in its target (a lock kept for a resume, a clean-up pending).

A whole trim reads every row of the `jobs` family (up to history_max_count),
holding the GIL: only the five fields it needs are decoded (`_Row`: ~1 µs a
row; a whole `Job` took 7-8, so a trim of 10,000 held the GIL 70-130 ms, a
few times a minute beside the statements when jobs run back to back). So
that a job's end need not do even that when nothing can be due, `History`
remembers what the last whole trim left: at most how many finished jobs
(plus those ended since), and the oldest of them. The minute's trim still
reads everything (it also finds rows other paths wrote)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec

from catalog import Catalog, Job
from catalog.records import fields_decoder

from .config import Config

ACTIVE = ("queued", "running", "paused")
KEPT = "kept_for_resume"  # a failed backup's result: its lock and objects are kept (resume.py)
PENDING = "pending"  # a job's cleanup that could not reach its target yet (recovery.py)
HOLDING = ("backup", "restore", "drop_backup")  # job types whose record may hold a target


class Host(Protocol):
    config: Config
    catalog: Catalog


class _Row(msgspec.Struct):
    """What a trim needs of a job's record."""

    job_id: str
    job_type: str
    status: str = "queued"
    created_at: str = ""
    finished_at: str | None = None


_decode_row = fields_decoder(Job, _Row)


def _rows(catalog: Catalog) -> Iterator[_Row]:
    return (_decode_row(raw) for _, raw in catalog.scan_raw(Job.FAMILY))


class _Held(msgspec.Struct):
    """What tells whether a finished job still holds something in its target."""

    result: Any = None
    cleanup: dict[str, Any] = {}


_decode_held = fields_decoder(Job, _Held)
_MARKS = (KEPT.encode(), PENDING.encode())


def holds_target(catalog: Catalog, job_id: str) -> bool:
    """Whether a finished job still holds something in its target: a backup's
    lock kept for a resume, or a clean-up not done yet (its target could not
    be reached)."""
    raw = catalog.get_raw(Job.FAMILY, job_id.encode())
    if raw is None or not any(mark in raw for mark in _MARKS):
        return False
    held = _decode_held(raw)
    kept = isinstance(held.result, dict) and bool(held.result.get(KEPT))
    return kept or bool(isinstance(held.cleanup, dict) and held.cleanup.get(PENDING))


class History:
    def __init__(self, host: Host) -> None:
        self._host = host
        self._finished: int | None = None  # None: unknown
        self._oldest: str | None = None
        self._ended = 0  # jobs ended since start (a trim counts those during it)

    def _cutoff(self) -> str:
        days = self._host.config.jobs.history_max_age_days
        return (datetime.now(UTC) - timedelta(days=days)).strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )[:-3] + "Z"

    def trim(self) -> int:
        """Drop finished jobs past the age or count limit; returns how many.

        Past the count limit the oldest go down to 1% under it (history_max_count
        // 100 fewer), so a server at the limit decodes its history once per
        that many jobs rather than after every one."""
        cfg = self._host.config.jobs
        catalog = self._host.catalog
        ended = self._ended
        finished = [j for j in _rows(catalog) if j.status not in ACTIVE]
        cutoff = self._cutoff()
        doomed = [j for j in finished if (j.finished_at or j.created_at) < cutoff]
        keep = [j for j in finished if not (j.finished_at or j.created_at) < cutoff]
        excess = len(keep) - cfg.history_max_count
        if excess > 0:
            excess += cfg.history_max_count // 100
            # Flush jobs go first, oldest first, then the rest: FLUSH is the one
            # job a role-user can start, and a flood of them pushed the record of
            # every backup and restore out of system.jobs.
            by_age = sorted(keep, key=lambda j: (j.job_type != "flush", j.job_id))
            doomed += by_age[:excess]
            keep = by_age[excess:]
        # The record of a backup whose lock is kept for a resume, or of a job
        # whose clean-up is still to be done, is what releases it: trimmed, the
        # lock (and every object it names) stayed in the target for good.
        spared = {j.job_id for j in doomed if j.status == "failed" and j.job_type in HOLDING
                  and holds_target(catalog, j.job_id)}
        doomed = [j for j in doomed if j.job_id not in spared]
        keep = [j for j in keep if j.job_id not in spared]
        if doomed:
            batch = catalog.batch()
            for j in doomed:
                batch.delete(Job, j.job_id)
            batch.commit()
        # Jobs that ended during the scan may be counted twice: an upper bound.
        self._finished = len(keep) + (self._ended - ended)
        self._oldest = min((j.finished_at or j.created_at for j in keep), default=None)
        return len(doomed)

    def due(self) -> bool:
        """Whether a trim could remove anything, by what the last one left and
        the jobs ended since; True when that is not known."""
        finished = self._finished
        if finished is None or finished > self._host.config.jobs.history_max_count:
            return True
        return finished > 0 and (self._oldest is None or self._oldest < self._cutoff())

    def ended(self) -> None:
        """A job's finished row is written."""
        self._ended += 1
        if self._finished is not None:
            self._finished += 1
