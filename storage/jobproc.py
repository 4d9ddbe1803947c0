"""Job processes: a job's repository work off the server's GIL.

A backup's snapshot has to run in the server (it reads the live tables), but
what follows is the repository's: storing the snapshot's files, the
manifest, the lock, keep_last's listing and prune; a VERIFY is nothing else.
Run in the server, that work is ~25 ms of Python per small backup taken from
the statements' GIL in short slices, and a single-row INSERT on the event
loop waits for each (docs/performance.md, "The p99 beside a BACKUP"). So
`call` runs such a storage function in a job process: a long-lived child
(`python -m storage.jobproc`) that unpickles the function and its arguments,
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

Should the process die mid-call, `call` raises Lost and the caller cleans up
what it had started (a backup abandons its lock). Should the server die, the
process is killed with it (PR_SET_PDEATHSIG), so nothing writes into a
repository that start-up is cleaning. A killed job that has not stopped
KILL_GRACE seconds after the cancel is killed, and Lost raised."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from catalog.errors import CairnError

from . import priority
from .work import Work

log = logging.getLogger(__name__)

T = TypeVar("T")

MODES = ("idle", "nice", "off")
POLL_SECONDS = 0.05  # how often the waiting server thread looks at KILL / PAUSE
PROGRESS_SECONDS = 0.05  # the job process sends progress at most this often
KILL_GRACE = 5.0  # seconds a cancelled call has to stop before its process is killed
KEEP = 1  # idle job processes kept for the next calls
IDLE_SECONDS = 10.0  # an idle one unused this long ends (it holds ~75 MB PSS)

_SUPPORTED = sys.platform.startswith("linux") and hasattr(os, "SCHED_IDLE")
_mode = "idle" if _SUPPORTED else "off"
_idle: list[_Process] = []
_busy: set[_Process] = set()
_guard = threading.Lock()
# Processes are started from this one thread, which lives as long as the
# server: PR_SET_PDEATHSIG fires when the *thread* that started a process
# ends, and job threads come and go.
_starter: Any = None
started = 0  # job processes started (for tests and benches)


class Lost(CairnError):
    """The job process ended (or was killed) in the middle of a call."""


class _Work:
    """Stands for the job's Work among a call's arguments (`WORK`)."""


WORK = _Work()


def set_mode(mode: str) -> None:
    """`[jobs] job_process`: "idle", "nice" or "off" (where the platform has no
    SCHED_IDLE, every mode is "off")."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"job_process must be one of {', '.join(MODES)}, not {mode!r}")
    _mode = mode if _SUPPORTED else "off"
    with _guard:  # idle processes of another mode (or nice value) go
        stale = [p for p in _idle if p.level != _level()]
        _idle[:] = [p for p in _idle if p.level == _level()]
    for p in stale:
        p.end()


def mode() -> str:
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
    `fn` raised, or Lost."""
    proc = None if here or _mode == "off" else _take()
    if proc is None:
        return fn(*_bind(args, job), **dict(zip(kwargs, _bind(kwargs.values(), job),
                                                strict=True)))
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


def _bind(values: Any, work: Any) -> list[Any]:
    return [work if isinstance(v, _Work) else v for v in values]


def _take() -> _Process | None:
    with _guard:
        while _idle:
            p = _idle.pop()
            if p.proc.poll() is None:
                return p
            p.end()
    global _starter
    try:
        with _guard:
            if _starter is None:
                from concurrent.futures import ThreadPoolExecutor
                _starter = ThreadPoolExecutor(1, thread_name_prefix="cairn-jobproc")
            starter = _starter
        return starter.submit(_Process, _level()).result()  # type: ignore[no-any-return]
    except OSError as exc:
        log.warning("no job process (%s); the job runs in the server", exc)
        return None


def _give(proc: _Process) -> None:
    with _guard:
        if len(_idle) < KEEP and proc.level == _level():
            proc.idle_since = time.monotonic()
            _idle.append(proc)
            timer = threading.Timer(IDLE_SECONDS + 0.1, _reap)
            timer.daemon = True
            timer.start()
            return
    proc.end()


def _reap() -> None:
    """End the job processes idle for IDLE_SECONDS (taken out of the idle
    list first, so no call can take one meanwhile)."""
    now = time.monotonic()
    with _guard:
        stale = [p for p in _idle if now - p.idle_since >= IDLE_SECONDS]
        _idle[:] = [p for p in _idle if p not in stale]
    for p in stale:
        p.end()


def busy() -> list[int]:
    """The pids of the job processes in the middle of a call."""
    with _guard:
        return sorted(p.pid for p in _busy)


def prestart() -> None:
    """Start one job process ahead of the first job (its imports take a moment)."""
    if _mode == "off":
        return
    with _guard:
        if _idle:
            return
    p = _take()
    if p is not None:
        _give(p)


def shutdown() -> None:
    """End the idle job processes (the server is stopping)."""
    with _guard:
        stale, _idle[:] = list(_idle), []
    for p in stale:
        p.end()


class _Process:
    """One job process and the server's end of its socket."""

    def __init__(self, level: str) -> None:
        global started
        self.level = level
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "storage.jobproc", str(theirs.fileno()), level,
                 str(os.getpid()), str(logging.getLogger().getEffectiveLevel())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env, cwd=root)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        started += 1
        self.conn = Connection(ours.detach())
        self.clean = False  # between calls, fit for the next one
        self.idle_since = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, msg: Any) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(msg))
        except OSError as exc:
            raise self._lost() from exc

    def _lost(self) -> Lost:
        self.end()
        return Lost(f"the job process ended in the middle of its work "
                    f"(exit status {self.proc.returncode})")

    def run(self, work: Work, fn: Callable[..., T], args: tuple[Any, ...],
            kwargs: Mapping[str, Any], armed: frozenset[str]) -> T:
        self.clean = False
        self._send(("call", fn, args, dict(kwargs), armed))
        cancelled_at: float | None = None
        paused = False
        while True:
            if self.conn.poll(POLL_SECONDS):
                try:
                    msg = pickle.loads(self.conn.recv_bytes())
                except (EOFError, OSError) as exc:
                    raise self._lost() from exc
                kind = msg[0]
                if kind == "progress":
                    work.progress(**msg[1])
                elif kind == "log":
                    _relog(*msg[1:])
                elif kind in ("fault", "park"):
                    try:
                        if kind == "fault":
                            work.fault(msg[1], **msg[2])
                        else:
                            work.check_cancelled()
                    except Exception as exc:
                        self._send(("raise", portable(exc)))
                    else:
                        self._send(("ok",))
                elif kind == "done":
                    self.clean = cancelled_at is None
                    return msg[1]  # type: ignore[no-any-return]
                elif kind == "error":
                    self.clean = cancelled_at is None
                    raise msg[1]
            if work.cancelled and cancelled_at is None:
                cancelled_at = time.monotonic()
                self._send(("cancel",))
                self.raise_priority()
            elif cancelled_at is not None and time.monotonic() - cancelled_at > KILL_GRACE:
                log.warning("job process %d did not stop %.0f s after its job was killed; "
                            "killing it", self.pid, KILL_GRACE)
                raise self._lost()
            if work.pause_requested != paused:
                paused = work.pause_requested
                self._send(("pause", paused))

    def raise_priority(self) -> None:
        """Every thread of the process back to normal scheduling at the jobs'
        background nice value, so a killed job cleans up without waiting for
        idle CPUs (needs the right to: root, CAP_SYS_NICE or RLIMIT_NICE)."""
        if self.level != "idle":
            return
        self.clean = False  # never back to the idle ones: it no longer runs idle
        with contextlib.suppress(OSError):
            for name in os.listdir(f"/proc/{self.pid}/task"):
                with contextlib.suppress(OSError, ValueError):
                    os.sched_setscheduler(int(name), os.SCHED_OTHER, os.sched_param(0))

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _relog(name: str, level: int, text: str) -> None:
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.handle(logging.makeLogRecord({
            "name": name, "levelno": level, "levelname": logging.getLevelName(level),
            "msg": text, "args": None, "processName": "job process"}))


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# --- the job process ---------------------------------------------------------


_SENDING = threading.Lock()  # one message at a time on the job process's socket


class RemoteWork:
    """The job's Work, as the job process sees it (module doc)."""

    def __init__(self, conn: Connection, armed: frozenset[str]) -> None:
        self._conn = conn
        self._armed = armed
        self._cancel = threading.Event()
        self._pause = threading.Event()
        self._replies: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._sending = _SENDING
        self._asking = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._last = 0.0

    def send(self, msg: Any) -> None:
        with self._sending:
            self._conn.send_bytes(pickle.dumps(msg))

    def _ask(self, msg: Any) -> None:
        with self._asking:
            self.flush()  # the server's job row is where the process is, first
            self.send(msg)
            reply = self._replies.get()
        if reply[0] == "raise":
            raise reply[1]

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def pause_requested(self) -> bool:
        return self._pause.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set() or self._pause.is_set():
            self._ask(("park",))

    def progress(self, *, force: bool = False, **counters: Any) -> None:
        with self._sending:
            self._pending.update((k, v) for k, v in counters.items() if v is not None)
            now = time.monotonic()
            if not (force or now - self._last >= PROGRESS_SECONDS) or not self._pending:
                return
            self._last = now
            pending, self._pending = self._pending, {}
            self._conn.send_bytes(pickle.dumps(("progress", {**pending, "force": force})))

    def flush(self) -> None:
        self.progress(force=True)

    def fault(self, point: str, **info: Any) -> None:
        if point in self._armed:
            self._ask(("fault", point, info))

    def give_way(self) -> None:
        """Nothing: the process runs only on CPUs the statements leave."""


class _Forward(logging.Handler):
    """The job process's log records, to the server's own logging (its format,
    level and destination); the server handles them while a call runs."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with contextlib.suppress(Exception), _SENDING:
            self.conn.send_bytes(pickle.dumps(("log", record.name, record.levelno, text)))


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(0)


def main(argv: list[str]) -> None:
    fd, level, parent = int(argv[0]), argv[1], int(argv[2])
    _die_with_parent(parent)
    if level == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        priority.set_background_nice(priority.DEFAULT_NICE)
    else:
        priority.set_background_nice(int(level))
        priority.lower_this_thread()
    conn = Connection(fd)
    root = logging.getLogger()
    root.setLevel(int(argv[3]) if len(argv) > 3 else logging.WARNING)
    root.addHandler(_Forward(conn))
    import storage.backup  # noqa: F401  (the imports a call needs, ahead of it)
    calls: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    current: list[RemoteWork | None] = [None]

    def read() -> None:
        """Requests, and the server's answers and pushes for the running call."""
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                os._exit(0)  # the server closed its end: nothing more to do
            try:
                msg = pickle.loads(data)
            except Exception as exc:  # a call whose code cannot load here
                RemoteWork(conn, frozenset()).send(("error", portable(exc)))
                continue
            work = current[0]
            if msg[0] == "call":
                # Its Work first: a KILL or PAUSE may follow before the call starts.
                current[0] = RemoteWork(conn, msg[4])
                calls.put(msg)
            elif work is None:
                continue
            elif msg[0] == "cancel":
                work._cancel.set()
            elif msg[0] == "pause":
                (work._pause.set if msg[1] else work._pause.clear)()
            else:
                work._replies.put(msg)

    threading.Thread(target=read, name="cairn-jobproc-read", daemon=True).start()
    while True:
        msg = calls.get()
        if msg is None:
            return
        _, fn, args, kwargs, _ = msg
        work = current[0]
        assert work is not None
        try:
            result = fn(*_bind(args, work), **dict(zip(kwargs, _bind(kwargs.values(), work),
                                                       strict=True)))
            work.flush()
            work.send(("done", result))
        except Exception as exc:
            with contextlib.suppress(Exception):
                work.flush()
            log.debug("job process call failed", exc_info=True)
            work.send(("error", portable(exc)))


if __name__ == "__main__":
    # As storage.jobproc, not __main__: the WORK a call's pickle names is that module's.
    from storage import jobproc

    jobproc.main(sys.argv[1:])
