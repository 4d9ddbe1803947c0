"""A file that ends the job process reading it, every time (VERIFY, RESTORE).

A job process tells the server which file's contents it reads
(storage/backup/crash_marks.py). `call` runs a check in a job process as
jobproc.call does; should the process die with a file marked, the death is
counted against that file of that backup and the check is run again, in a
new process, if it crashed (CRASHES: a segfault, an abort); a process
killed (SIGKILL: the OOM killer, an operator) is no sign of damage, a valid
file may need more memory than the machine has: the check is run again, and
a second kill on the same file ends the call 503 naming it, never blamed.

A file that BLAME_AFTER processes died on, one at least having read no file
before it (`Lost.first`), is not read again: the check reports it damaged,
naming it, so VERIFY says invalid and RESTORE refuses BACKUP_INVALID, as
for any damaged file, and the two agree (they share the count: a VERIFY
that blamed a file makes the next RESTORE refuse it at once). After a death
in a file read after others the next run reads that file first: a reader
one of those made write out of bounds may end the process in any later
file (a sound file read after such a one was blamed until 2026-12-07). A death with no file marked (the process killed between files,
or while it hashed bytes), and one after KILL JOB, end the call as before
(503; cancelled). A process killed once from outside on a file (kill -9, the
OOM killer for another process's memory) is followed by a check that reads
the file again and passes. A count under BLAME_AFTER goes with the call
that made it, however the call ends (`_forget`): only crashes within one
call, or in calls at once, blame a file. The counts live in the server's
memory (a restart forgets them: the file is then read again, and blamed
again)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import jobproc
from .joblost import Killed, Lost
from .work import Work

log = logging.getLogger(__name__)

T = TypeVar("T")

# Signals a reader's crash ends a process with (not SIGKILL: see the module doc).
CRASHES = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL,
                     signal.SIGFPE, signal.SIGSYS})
BLAME_AFTER = 2  # deaths on one file of one backup before it is reported damaged
# Files one call may see crash its job process before it gives up (503; the
# counts stay, so the next run goes on from them). Every crash brings a file
# nearer to its blame (a blamed one is not read again). Until 2026-12-07 a
# call gave up after 4 deaths of any kind: a VERIFY of a backup with two
# crashing files was 503, where a RESTORE of it (which stops at its first
# damaged file) refused it BACKUP_INVALID.
MOST_FILES = 16
MOST_KILLS = 4  # kills (not crashes) on distinct files one call may see, then 503
KEPT = 10_000  # files with deaths remembered (the oldest forgotten past it)

_deaths: dict[str, int] = {}  # crash_marks.key -> job processes that died reading it
_firsts: set[str] = set()  # of those, the ones a process died in as the first file it read
_guard = threading.Lock()


def _blamed(mark: str) -> bool:
    return _deaths.get(mark, 0) >= BLAME_AFTER and mark in _firsts


def blamed() -> frozenset[str]:
    with _guard:
        return frozenset(k for k in _deaths if _blamed(k))


def died(mark: str, first: bool = True) -> int:
    """One more job process ended reading `mark` (`first`: the first file it
    read); the count now."""
    with _guard:
        n = _deaths.pop(mark, 0) + 1
        _deaths[mark] = n  # the newest last: the oldest go first past KEPT
        if first:
            _firsts.add(mark)
        while len(_deaths) > KEPT:
            _firsts.discard(oldest := next(iter(_deaths)))
            del _deaths[oldest]
        return n


def _forget(marks: set[str]) -> None:
    """A call that ended, however: the files it died on fewer than
    BLAME_AFTER times are counted no more. Read through, they passed; left
    unread (a KILL, another error), a count kept would have blamed a sound
    file on one more passing crash, in a call of next week (a count of 1
    outlived the call until 2026-12-07). A file that crashes each time
    reaches BLAME_AFTER within one call: it is read again at once."""
    with _guard:
        for mark in marks:
            if not _blamed(mark):
                _deaths.pop(mark, None)
                _firsts.discard(mark)


def call(job: Work, fn: Callable[..., T], /, *args: Any, here: bool = False,
         **kwargs: Any) -> T:
    """`jobproc.call(job, fn, *args, blamed=…, first=…, **kwargs)`: `fn`
    takes the files to blame (crash_marks.marking) as `blamed`, and those to
    read before the others as `first`; run again while its process dies on a
    file (module doc)."""
    marks: set[str] = set()
    try:
        return _runs(_Onward(job), fn, args, kwargs, here, marks)
    finally:
        _forget(marks)


class _Onward:
    """The job's Work for a call that may be run again: its counters done
    never go back (a run again starts from the first file: until 2026-12-07
    a VERIFY's `bytes_done` fell back to 0 at each crash)."""

    def __init__(self, job: Work) -> None:
        self._job = job
        self._most: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def progress(self, **counters: Any) -> None:
        for name in ("files_done", "bytes_done", "rows"):
            if counters.get(name) is not None:
                counters[name] = self._most[name] = max(counters[name],
                                                        self._most.get(name, 0))
        self._job.progress(**counters)


def _runs(job: Work, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any],
          here: bool, marks: set[str]) -> T:
    """`call`'s runs; `marks` gets each file a process crashed on."""
    killed: set[str] = set()  # files a process was killed (not crashed) reading
    ahead: dict[str, None] = {}  # files the next run reads first (the newest first)
    crashes = 0
    while True:
        before = blamed()
        try:
            result = jobproc.call(job, fn, *args, blamed=before, here=here,
                                  first=tuple(reversed(ahead)), **kwargs)
        except Killed:
            raise
        except Lost as exc:
            if exc.reading is None:
                raise
            if exc.signal not in CRASHES:
                if exc.reading in killed:
                    raise Lost(f"the job process was killed (signal {exc.signal}) each time it "
                               f"read file {exc.reading}: out of memory? (not counted as "
                               "damage: the file may need more memory than this machine "
                               "gives)") from exc
                killed.add(exc.reading)
                if len(killed) > MOST_KILLS:
                    raise Lost(f"the job process was killed {len(killed)} times while reading "
                               "the backup's files; see the log for which") from exc
                log.warning("a job process was killed while reading file %s (signal %s): read "
                            "again", exc.reading, exc.signal)
                ahead.pop(exc.reading, None)
                ahead[exc.reading] = None
                continue
            crashes += 1
            # A death in a file read after others: a reader that one of them
            # made write out of bounds may end the process in any later file.
            # Counted, but blamed only once a process died in it as the first
            # file it read: the next run reads it first. (Asked first and
            # still read after others, as in an archive target, read in its
            # order, it counts as first.)
            first = exc.first or next(reversed(ahead), None) == exc.reading
            if not first:
                ahead.pop(exc.reading, None)
                ahead[exc.reading] = None
            n = died(exc.reading, first)
            marks.add(exc.reading)
            log.warning("a job process ended while reading file %s (%d time%s%s): %s",
                        exc.reading, n, "" if n == 1 else "s",
                        "" if first else ", after other files",
                        "it is reported damaged" if exc.reading in blamed() else
                        "read again" if first else "read again, first, in a new process")
            if crashes >= MOST_FILES * BLAME_AFTER:
                raise Lost(f"the job process crashed {crashes} times while reading the "
                           "backup's files (see the log for which); run it again to go on "
                           "from there") from exc
            continue
        return result
