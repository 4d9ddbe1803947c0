"""How a job-process call ends when its process does (storage/jobproc.py)."""

from __future__ import annotations

import signal as signals

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


def ended(status: int | None, reading: str | None, first: bool, doing: str | None) -> Lost:
    """Lost for a job process that ended with exit `status` (-N: signal N),
    reading the file `reading` (`first`: the first it read), doing `doing`
    (what it read then: "object … of backup …", which a crash is never
    blamed on: storage/jobblame.py). A VERIFY whose process crashed while it
    decrypted an object said only "(exit status -11)" until 2026-12-08."""
    signal = max(0, -(status or 0)) or None
    text = f"the job process ended in the middle of its work (exit status {status})"
    if doing is not None:
        name = next((s.name for s in signals.Signals if s == signal), f"signal {signal}")
        how = ("was killed (SIGKILL: the OOM killer, or kill -9)" if signal == signals.SIGKILL
               else f"crashed ({name})" if signal is not None else "exited")
        text += f": it {how} while it read {doing}; run it again"
    lost = Lost(text)
    lost.reading, lost.first, lost.signal = reading, first, signal
    return lost
