"""How a long storage operation (a snapshot's export, a backup's transfer, a
restore) reports progress, is stopped, and lets tests act at named points. The
server's JobContext satisfies it; storage never imports the server."""

from __future__ import annotations

from typing import Any, Protocol


class Work(Protocol):
    """Progress, cancellation and fault points of a long storage operation."""

    @property
    def cancelled(self) -> bool: ...

    def check_cancelled(self) -> None: ...

    @property
    def pause_requested(self) -> bool:
        """A pause is asked: the operation lets what is in flight finish before
        its next `check_cancelled` parks it, so a paused job moves nothing."""

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
        """Counters done and to do; `fraction`, the share of the whole job
        done, where the counters do not say it (a RESTORE: its transfer's
        bytes, then its check of every file it fetched: storage/install.py),
        else theirs (bytes, then files)."""

    def waiting(self, what: str | None) -> None:
        """The operation waits for `what` ("the write lock of table app.t",
        storage/lockset.py), None once it no longer does: the job's row says
        so while it lasts (`system.jobs`' `waiting_for`)."""

    def fault(self, point: str, **info: Any) -> None:
        """A named point where tests act (see server/faults.py)."""

    def give_way(self) -> None:
        """Called by a transfer's threads between chunks: returns at once when
        no statement a client waits for is running, else once none is, after
        a short bounded wait (the server's `Statements.give_way`)."""
