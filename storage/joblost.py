"""How a job-process call ends when its process does (storage/jobproc.py)."""

from __future__ import annotations

from catalog.errors import CairnError, Cancelled, Unavailable


class Lost(CairnError):
    """The job process ended (or was killed) in the middle of a call. No bug
    of the server's: the OOM killer, an operator's kill -9. It cannot be done
    now and the same statement may work when run again: 503 UNAVAILABLE (a
    WARNING in the log, not a trace), over pgwire 58000 system_error (an
    error outside the server)."""

    code, status = Unavailable.code, Unavailable.status
    sqlstate: str | None = "58000"
    # The file whose contents it was reading, if any (backup/crash_marks.py).
    reading: str | None = None
    # Whether that file was the first one the process read (its readers'
    # memory as they started): a crash in a later file may be an earlier
    # file's doing (storage/jobblame.py).
    first: bool = True
    # The signal that ended the process, if one did (11: a segfault; 9: the
    # OOM killer or an operator's kill -9).
    signal: int | None = None


class Killed(Lost, Cancelled):
    """Lost after the job was cancelled (a KILL it did not stop for within
    KILL_GRACE): the job ends cancelled, and the caller still cleans up."""

    code, status = Cancelled.code, Cancelled.status
    sqlstate = None  # CANCELLED's, 57014
