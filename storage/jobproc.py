"""Job processes: a job's repository work off the server's GIL.

A backup's snapshot has to run in the server (it reads the live tables), but
what follows is the repository's: storing the snapshot's files, the
manifest, the lock, keep_last's listing and prune; a VERIFY is nothing else.
Run in the server, that work is ~25 ms of Python per small backup taken from
the statements' GIL in short slices, and a single-row INSERT on the event
loop waits for each (docs/performance.md, "The p99 beside a BACKUP"). So
`call` runs such a storage function in a job process: a long-lived child
(`python -m storage.jobchild`) that unpickles the function and its arguments,
runs it, and pickles back its result or exception.

The job process runs under SCHED_IDLE (`[jobs] job_process = "idle"`, the
default): Linux gives it a CPU only when no normal thread wants one, so a
statement never waits for it; or at the jobs' background nice value
("nice"); or not at all ("off": every call runs on the caller's thread, as
before). Measured with bench/load.py: the p99 of the statements beside
the jobs' windows went from 1.25 to 0.95 of the quiet windows' when the jobs
ran in a SCHED_IDLE process instead of a normal one.

The function gets a `Work` that is the job's, over the socket:
- progress goes to the server at most every PROGRESS_SECONDS (or when forced);
- KILL and PAUSE JOB are pushed to the process, which sees them in
  `cancelled` / `pause_requested`; its `check_cancelled` then asks the server,
  whose own `check_cancelled` parks a paused job or raises Cancelled there,
  and the answer (or the exception) comes back;
- a fault point armed in the server (server/faults.py) is run in the server,
  synchronously, and whatever it raises is raised at the point;
- `give_way` does nothing: a SCHED_IDLE process waits for the CPUs anyway.

Should the process die mid-call, `call` raises Lost and the caller cleans up what it had
started (a backup abandons its lock). Should the server die, the process is killed with it
(PR_SET_PDEATHSIG), so nothing writes into a repository that start-up is cleaning. A killed
job that has not stopped KILL_GRACE seconds after the cancel is killed, and Lost raised.

A SCHED_IDLE process waits for as long as normal work keeps every CPU busy, so a call whose
process was runnable for STARVE_SECONDS with next to no CPU is lifted to the server's own
priority on half the CPUs (`lifted_cpus`): it then gets the share of those any thread gets,
and the statements keep the other half. The calls of the next STARVED_HOLD seconds start
lifted (the CPUs were all busy a moment ago), and between calls the process goes back to
SCHED_IDLE. Lifting needs CAP_SYS_NICE or an RLIMIT_NICE that allows the server's nice
value; without either, "idle" runs the jobs in the server (set_mode says so).

One job process is kept ready for the next call (`ready`): started with the server, in the
background, and again whenever one ends; its imports (DuckDB's and sqlglot's among them: a
BACKUP counts live rows with them) take ~0.8 s of CPU, which a BACKUP would otherwise wait
for, and it holds ~100 MB PSS; once idle a second after a call (jobchild.GIVE_BACK_AFTER) it
hands its free memory back. (Ending it while a RESTORE ran saved that memory but left the
next BACKUP waiting for a new process: 0.56 s backups became 1.5 s under bench/load.py.)
Copier processes (storage/backup/copier.py) are not used in a job process: they take a
copy's hashing off the server's GIL, and there is no server GIL here, so a job process is
only ever its own threads. Unlike the archive helper (storage/archive/helper.py), which only
turns log entries into segment bodies, a job process does the repository's I/O, so it is
handed the Repository as the server holds it, credentials and keys included: over a socket
pair only the two processes hold, never logged."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from . import priority
from .backup.layout import process_tag
from .jobframes import Frames, portable, relog, send_framed
from .joblost import Killed as Killed
from .joblost import Lost as Lost
from .joblost import ended
from .work import Work

log = logging.getLogger(__name__)

T = TypeVar("T")

MODES = ("idle", "nice", "off")
POLL_SECONDS = 0.05  # how often the waiting server thread looks at KILL / PAUSE
PROGRESS_SECONDS = 0.05  # the job process sends progress at most this often
KILL_GRACE = 5.0  # seconds a cancelled call has to stop before its process is killed
STARVE_SECONDS = 0.5  # runnable this long with almost no CPU: out of SCHED_IDLE (starved)
SAMPLE_SECONDS = 0.1  # how often a call's process is looked at for that
STARVED_HOLD = 30.0  # after a starved call, later calls this soon start lifted
KEEP = 1  # job processes kept ready for the next calls (~100 MB PSS each)

_SUPPORTED = sys.platform.startswith("linux") and hasattr(os, "SCHED_IDLE")
_mode = "off"  # until the server sets its [jobs] job_process
_idle: list[_Process] = []
_busy: set[_Process] = set()
_alive: set[_Process] = set()  # started, not ended (their tags: process_tags)
ended_tags: set[str] = set()  # of those ended: what a run-time tmp/ sweep removes (repos.py)
_guard = threading.Lock()
_starter: Any = None  # the thread job processes are started from (_on_starter)
_starved_at = -STARVED_HOLD  # when a call last had to be lifted (monotonic)
_base_nice = 0  # the server's own nice value, a starved job process's (lift)
started = 0  # job processes started (for tests and benches)


class _NotSent(Lost):
    """The (kept) process had ended before the call: none of it ran; `call` tries another."""


class _Work:
    """Stands for the job's Work among a call's arguments (`WORK`)."""


WORK = _Work()


def set_mode(mode: str) -> None:
    """`[jobs] job_process`: "idle", "nice" or "off" (always "off" without SCHED_IDLE)."""
    global _mode, _base_nice, _starved_at
    if mode not in MODES:
        raise ValueError(f"job_process must be one of {', '.join(MODES)}, not {mode!r}")
    _mode = mode if _SUPPORTED else "off"
    _starved_at = -STARVED_HOLD
    if _mode == "idle":
        _base_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
        if not priority.may_leave_sched_idle(_base_nice):
            log.warning("[jobs] job_process = \"idle\" needs the right to take a starved "
                        "job out of SCHED_IDLE (CAP_SYS_NICE, or RLIMIT_NICE of at least "
                        "%d); without it a job could wait for as long as statements keep "
                        "every CPU busy, so jobs run in the server", 20 - _base_nice)
            _mode = "off"
    with _guard:  # idle processes of another mode (or nice value) go
        stale = [p for p in _idle if _mode == "off" or p.level != _level()]
        _idle[:] = [p for p in _idle if p not in stale]
    for p in stale:
        p.end()
    ready()


def mode() -> str:  # "idle", "nice" or "off"
    return _mode


def _level() -> str:
    """How a job process is started now: "idle", or the nice value it takes."""
    return "idle" if _mode == "idle" else str(priority.background_nice())


def call(job: Work, fn: Callable[..., T], /, *args: Any, here: bool = False,
         **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a job process, with `WORK` among the arguments
    standing for `job` (the job's progress, KILL, PAUSE and faults); on this
    thread instead when `here`, when job processes are off, or when none can
    start. Only the fault points `job.armed` names (when it has that
    attribute: the server's JobContext) are sent back to run here. Raises what
    `fn` raised, or Lost. A process that had ended before it got the call
    (nothing of it ran) does not fail it: the kept ones are tried, then one
    started for the call (the busy and the ready one killed together made a
    DROP 503)."""
    for attempt in range(KEEP + 2):
        proc = None if here or _mode == "off" else _take(fresh=attempt > KEEP)
        if proc is None:
            return fn(*_bind(args, job), **dict(zip(kwargs, _bind(kwargs.values(), job),
                                                    strict=True)))
        try:
            return _run(proc, job, fn, args, kwargs)
        except _NotSent:
            if attempt > KEEP:
                raise
            # A kept process that had ended while it waited: the next one.
    raise AssertionError("unreachable")


def _run(proc: _Process, job: Work, fn: Callable[..., T], args: tuple[Any, ...],
         kwargs: Mapping[str, Any]) -> T:
    with _guard:
        _busy.add(proc)
    try:
        return proc.run(job, fn, args, kwargs, getattr(job, "armed", frozenset()))
    finally:
        with _guard:
            _busy.discard(proc)
        if proc.clean:
            _give(proc)
        else:
            proc.end()
            ready()


def _bind(values: Any, work: Any) -> list[Any]:
    return [work if isinstance(v, _Work) else v for v in values]


def _take(fresh: bool = False) -> _Process | None:
    with _guard:
        proc = None if fresh else _pop()
    if proc is not None:
        return proc
    try:
        # On the starter's thread, after a process `ready` is starting: that one
        # (`fresh`: one started for this call).
        return _on_starter(  # type: ignore[no-any-return]
            (lambda: _Process(_level())) if fresh else _get).result()
    except OSError as exc:
        log.warning("no job process (%s); the job runs in the server", exc)
        return None


def _pop() -> _Process | None:
    """A kept process, if any (under _guard). Not asked whether it is still alive (a
    waitpid, which lets the server's GIL go beside the statements, once a call): one that
    ended meanwhile has closed its end of the socket, so `call` takes another."""
    return _idle.pop() if _idle else None


def _get() -> _Process:
    with _guard:
        proc = _pop()
    return proc if proc is not None else _Process(_level())


def _on_starter(fn: Callable[[], T]) -> Any:
    """`fn` on the one thread that starts job processes (PR_SET_PDEATHSIG
    fires when the thread that started a process ends, and job threads come
    and go); its Future."""
    global _starter
    with _guard:
        if _starter is None:
            from concurrent.futures import ThreadPoolExecutor
            _starter = ThreadPoolExecutor(1, thread_name_prefix="cairn-jobproc")
        return _starter.submit(fn)


def ready() -> None:
    """Have a job process started and kept for the next call, unless one is
    kept already or job processes are off. It starts in the background,
    under SCHED_IDLE: ~0.4 s of imports no call then waits for (a BACKUP of
    256 MiB took 1.0-1.4 s with a new process, 0.25-0.29 s with a kept one)."""
    def start() -> None:
        with _guard:
            if _mode == "off" or len(_idle) >= KEEP:
                return
            level = _level()
        try:
            proc = _Process(level)
        except OSError as exc:
            log.warning("no job process kept ready (%s)", exc)
            return
        _give(proc)

    if _mode != "off":
        _on_starter(start)


def _give(proc: _Process) -> None:
    with _guard:
        if len(_idle) < KEEP and proc.level == _level() and _mode != "off":
            _idle.append(proc)
            return
    proc.end()


def process_tags() -> set[str]:
    """This process's tag and its job processes' not ended (repos.py)."""
    with _guard:
        return {process_tag(), *(p.tag for p in _alive)}


def busy() -> list[int]:
    """The pids of the job processes in the middle of a call."""
    with _guard:
        return sorted(p.pid for p in _busy)


class _Process:
    """One job process and the server's end of its socket."""

    def __init__(self, level: str) -> None:
        global started
        self.level = level
        self.tag = secrets.token_hex(4)  # in the names of its temp files (layout.temp_path)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            # A process group of its own: a terminal's Ctrl-C (SIGINT to the group) is
            # the server's to act on (it cancels the job); it still dies with the server
            # (jobchild._die_with_parent). -P: no module of the working directory (a
            # json.py there made every BACKUP a 500).
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "storage.jobchild", str(theirs.fileno()), level,
                 str(os.getpid()), str(logging.getLogger().getEffectiveLevel()), self.tag],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env, process_group=0)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        started += 1
        with _guard:
            _alive.add(self)
        if level == "idle":  # here, not in the child: a lift must never come before it
            with contextlib.suppress(OSError):
                os.sched_setscheduler(self.proc.pid, os.SCHED_IDLE, os.sched_param(0))
        # Each read of the process's messages waits at most POLL_SECONDS (then
        # KILL and PAUSE are looked at): see storage/jobframes.py.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", 0, int(POLL_SECONDS * 1e6)))
        self.conn = Connection(ours.detach())
        self._frames = Frames(self.conn.fileno())
        self.clean = False  # between calls, fit for the next one
        self.lifted = False  # out of SCHED_IDLE for this call (a KILL, or starved)
        self._cancelled_at: float | None = None  # when the running call's KILL was sent
        self._paused = False  # what the process was last told of PAUSE JOB
        self._sampled = 0.0
        self._clock = priority.SchedClock(self.proc.pid)
        self._samples: list[tuple[float, int, int]] = []  # (time, ns on a CPU, ns queued)
        self._sends = 0  # messages sent to it but the calls (KILL, PAUSE, answers)
        self.reading: str | None = None  # the call's file being read (crash_marks.py)
        self.doing: str | None = None  # what else it reads: an object (crash_marks.doing)
        self.files_read = 0  # of its life (a crash's file the first? jobblame.py)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, msg: Any) -> None:
        self._sends += 1
        try:
            send_framed(self.conn, msg)
        except OSError as exc:
            raise self._lost() from exc

    def _lost(self) -> Lost:
        self.end()
        if self._cancelled_at is not None:
            return Killed(f"the job was cancelled; its job process was stopped "
                          f"(exit status {self.proc.returncode})")
        return ended(self.proc.returncode, self.reading, self.files_read <= 1, self.doing)

    def run(self, work: Work, fn: Callable[..., T], args: tuple[Any, ...],
            kwargs: Mapping[str, Any], armed: frozenset[str]) -> T:
        global _starved_at
        self.clean = False
        self._cancelled_at = None
        self._paused = False
        self.reading = self.doing = None
        self._samples.clear()
        # The first sample SAMPLE_SECONDS in: most calls (a small BACKUP's
        # store, keep_last's listing) are over by then, and reading the
        # process's threads at once (a pread each) was ~8 takes of the GIL a
        # BACKUP beside the event loop (bench/gil_takes.py). A starved call
        # is seen SAMPLE_SECONDS later: STARVE_SECONDS of samples from this one.
        self._sampled = time.monotonic()
        if self.level == "idle" and time.monotonic() - _starved_at < STARVED_HOLD:
            self.lift()  # the CPUs were all busy a moment ago: no wait to find it out
        try:
            send_framed(self.conn, ("call", fn, args, dict(kwargs), armed))
        except OSError as exc:  # it had ended: no call can have started there
            self.end()
            raise _NotSent(f"the job process had ended (exit status {self.proc.returncode})"
                           ) from exc
        sends, heard = self._sends, False
        while True:
            try:
                frame = self._frames.next()
            except ConnectionResetError as exc:
                # It ended with bytes of ours unread: before it had the whole
                # call, if the call is all we sent and it said nothing yet (a
                # killed process's socket can close just after the call was
                # written to it, which then succeeded).
                if heard or self._sends != sends:
                    raise self._lost() from exc
                self.end()
                raise _NotSent(f"the job process had ended (exit status "
                               f"{self.proc.returncode})") from exc
            except (EOFError, OSError) as exc:
                raise self._lost() from exc
            if frame is not None:
                heard = True
                msg = pickle.loads(frame)
                kind = msg[0]
                if kind == "progress":
                    work.progress(**msg[1])
                elif kind == "log":
                    relog(*msg[1:])
                elif kind == "reading":
                    self.reading, self.files_read = msg[1], self.files_read + (msg[1] is not None)
                elif kind == "doing":
                    self.doing = msg[1]
                elif kind in ("fault", "park"):
                    try:
                        if kind == "fault":
                            work.fault(msg[1], **msg[2])
                        else:
                            work.check_cancelled()
                    except Exception as exc:
                        self._send(("raise", portable(exc)))
                    else:
                        # A KILL that came meanwhile (a test's fault point waits
                        # for one) is known there before the point returns.
                        self._push(work)
                        self._send(("ok",))
                elif kind == "done":
                    self._settle()
                    return msg[1]  # type: ignore[no-any-return]
                elif kind == "error":
                    self._settle()
                    raise msg[1]
            self._push(work)
            if (self._cancelled_at is not None
                    and time.monotonic() - self._cancelled_at > KILL_GRACE):
                log.warning("job process %d did not stop %.0f s after its job was killed; "
                            "killing it", self.pid, KILL_GRACE)
                raise self._lost()
            if self.level == "idle" and not self.lifted and self.starved(time.monotonic()):
                _starved_at = time.monotonic()
                log.info("job process %d got under a fifth of the CPU it wanted for %.1f s "
                         "(statements keep every CPU busy): it runs at the server's "
                         "priority now", self.pid, STARVE_SECONDS)
                self.lift()

    def _push(self, work: Work) -> None:
        """KILL and PAUSE JOB, to the process once each changes."""
        if work.cancelled and self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
            self._send(("cancel",))
            self.lift()
        if work.pause_requested != self._paused:
            self._paused = work.pause_requested
            self._send(("pause", self._paused))

    def lift(self) -> None:
        """Every thread of the process out of SCHED_IDLE, to
        the server's own priority: a killed job cleans up without waiting for
        idle CPUs, and a starved one gets the share of the CPUs any thread gets,
        as it did in the server (set_mode made sure this is allowed)."""
        if self.level != "idle" or self.lifted:
            return
        self.lifted = True
        priority.lift(self._clock, _base_nice, lifted_cpus())

    def _settle(self) -> None:
        """After a call: a process lifted for starvation goes back to SCHED_IDLE
        and is kept; one a KILL touched is not used again."""
        if self.lifted and self._cancelled_at is None:
            try:
                priority.back_to_idle(self._clock, os.sched_getaffinity(0))
                self.lifted = False
            except OSError as exc:
                log.info("job process %d stays lifted (%s): not kept", self.pid, exc)
        self.clean = not self.lifted

    def starved(self, now: float) -> bool:
        """Whether over the last STARVE_SECONDS the process was runnable at least half the time and got a CPU for under a fifth of
        the time it wanted one: the statements keep every CPU busy, and under
        SCHED_IDLE (which still gets ~10% of a core beside them, measured)
        the job would crawl for as long as they do. Sampled every
        SAMPLE_SECONDS."""
        if now - self._sampled < SAMPLE_SECONDS:
            return False
        self._sampled = now
        ran, waited = self._clock.sample()
        self._samples.append((now, ran, waited))
        while len(self._samples) > 1 and now - self._samples[1][0] >= STARVE_SECONDS:
            self._samples.pop(0)
        then, ran0, waited0 = self._samples[0]
        window = (now - then) * 1e9
        ran, waited = ran - ran0, waited - waited0
        return (now - then >= STARVE_SECONDS and waited >= 0.5 * window
                and ran <= 0.2 * (ran + waited))

    def end(self) -> None:
        self._clock.close()
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        with _guard:
            _alive.discard(self)
            ended_tags.add(self.tag)


def lifted_cpus() -> set[int]:
    """The CPUs a lifted job process runs on: the last half of the server's
    (at least one). At the server's priority on every CPU, its copy threads
    took turns with a single-row INSERT on both of two cores: beside one
    client's INSERT loop the longest INSERT during a 1 GiB BACKUP took
    69-103 ms (84-180 over 15 ms). On half of them, the statements always
    have the other half to themselves: 11-22 ms (0-2 over), and 2-3 times
    the INSERTs (bench/lifted_job.py; docs/performance.md, "A lifted job on
    half the CPUs")."""
    cpus = sorted(os.sched_getaffinity(0))
    return set(cpus[len(cpus) - max(1, len(cpus) // 2):])
