"""Job history trimming: finished jobs past `[jobs] history_max_age_days`, and
beyond `history_max_count` the oldest flush jobs, then the oldest of the rest,
are removed (docs/sql.md, "History").

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
from typing import Protocol

import msgspec

from catalog import Catalog, Job
from catalog.records import fields_decoder

from .config import Config

ACTIVE = ("queued", "running", "paused")


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
