"""The job process's side of storage/jobproc.py: `python -m storage.jobchild`
runs the calls the server sends, one at a time, with a RemoteWork standing
for the job's Work, and sends back results, exceptions, progress and log
records (the protocol is jobproc.py's module doc)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import pickle
import queue
import resource
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(0)


if __name__ == "__main__":
    # Before the imports below: they take ~1 s (pyarrow, storage.backup), and
    # minutes under SCHED_IDLE beside busy CPUs. Set after them, a process
    # whose server died meanwhile went on importing for as long, holding
    # ~250 MB and the idle CPU time the live job processes wait for (31 such
    # at once in one run of the suite). argv: fd, level, parent, ... (main).
    _die_with_parent(int(sys.argv[3]))

from . import priority  # noqa: E402
from .jobframes import portable  # noqa: E402
from .jobproc import PROGRESS_SECONDS, _bind  # noqa: E402

log = logging.getLogger("storage.jobproc")

GIVE_BACK_AFTER = 1.0  # seconds idle after a call before its memory goes back
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
            self.flush()  # what the point sees of the job is all done before it
            self._ask(("fault", point, info))

    def give_way(self) -> None:
        """Nothing: the process runs only on CPUs the statements leave."""

    def waiting(self, what: str | None) -> None:
        """Nothing: no work of a job process waits for a table's lock."""

    def reading(self, mark: str | None) -> None:
        """The file whose contents are read now (None: none), told to the
        server before the read: should this process die in it, the server
        knows on which (storage/backup/crash_marks.py)."""
        self.send(("reading", mark))

    def doing(self, what: str | None) -> None:
        """What it reads now that is no file's contents (an object, as VERIFY
        reads it: decrypted, hashed), told to the server before the read:
        should this process die in it, the server's error names it."""
        self.send(("doing", what))


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


def _no_core_dump() -> None:
    """A job process reads hostile files with C++ readers (a crash is reported,
    storage/jobblame.py) and holds backup keys: a crash writes no core file."""
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


OOM_SCORE_ADJ = 500  # added to the server's own (at most 1000)


def _first_for_the_oom_killer() -> None:
    """A job process reads hostile files, and a valid one may need more memory
    than the machine has: out of memory, the OOM killer is to end this
    process (a kill on a file is 503 naming it, storage/jobblame.py), not the
    server, whose end fails every statement and job. It chose by size alone,
    and the server may be the larger (DuckDB's buffers, VERIFY ARCHIVE's
    manifests). Raising one's own score needs no privilege."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/oom_score_adj", "r+") as f:
        adj = min(1000, int(f.read()) + OOM_SCORE_ADJ)
        f.seek(0)
        f.write(str(adj))


def main(argv: list[str]) -> None:
    """argv: the socket's fd, the level ("idle" or a nice value), the server's
    pid (whose death ends this process: set at the module's top), the log
    level and the process tag."""
    fd, level = int(argv[0]), argv[1]
    _no_core_dump()
    _first_for_the_oom_killer()
    if len(argv) > 4:  # its temp files' names say they are this process's
        from .backup.layout import set_process_tag
        set_process_tag(argv[4])
    if level == "idle":
        # The server put this process under SCHED_IDLE as it started, and
        # lifts and lowers all its threads together (jobproc._Process.lift):
        # no thread lowers itself further.
        priority.set_background_nice(0)
    else:
        priority.set_background_nice(int(level))
        priority.lower_this_thread()
    conn = Connection(fd)
    root = logging.getLogger()
    root.setLevel(int(argv[3]) if len(argv) > 3 else logging.WARNING)
    root.addHandler(_Forward(conn))
    # The imports a call needs, ahead of it; storage.snapshot for a BACKUP's
    # image, whose LiveCount counts live rows with DuckDB and sqlglot.
    # Unpickled with the first call, these took ~0.25 s of the first BACKUP
    # after start and stayed outside the freeze below.
    import storage.backup  # noqa: F401
    import storage.snapshot  # noqa: F401
    from storage.backup import copier

    # Copier processes exist to take a copy's hashing off the server's GIL;
    # here there are no statements to share a GIL with, and each copier would
    # be ~10 MB more beside this process (docs/performance.md).
    copier.set_enabled(False)
    # The live-row count's DuckDB database, opened once here, not within
    # the first BACKUP that counts a file of overwrites (~13 ms of CPU).
    from storage import live_rows
    live_rows.open_database()
    # What is imported by now lives as long as the process: out of the
    # collector's sight (as the server's own start-up objects, server/serving.py),
    # so the full collection after a call (_give_back, once idle) walks what the
    # calls left, not the ~40,000 objects of these imports: 12 ms of CPU a
    # call before, three calls to a BACKUP with keep_last (docs/performance.md).
    gc.freeze()
    calls: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    current: list[RemoteWork | None] = [None]

    def read() -> None:
        """Requests, and the server's answers and pushes for the running call."""
        while True:
            try:
                data = conn.recv_bytes()
                bufs = [conn.recv_bytes() for _ in range(int.from_bytes(data[:4], "little"))]
            except (EOFError, OSError):
                os._exit(0)  # the server closed its end: nothing more to do
            try:
                # jobproc.send_framed: the pickle, then its buffers out of band.
                msg = pickle.loads(memoryview(data)[4:], buffers=bufs)
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
    msg = calls.get()
    while msg is not None:
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
        fn = args = kwargs = msg = result = None  # nothing of the call is kept
        msg = _next_call(calls)


def _next_call(calls: queue.Queue[tuple[Any, ...] | None]) -> tuple[Any, ...] | None:
    """The next call, with the last one's memory given back first unless it
    comes within GIVE_BACK_AFTER: a BACKUP with keep_last is five calls back
    to back (store, list, plan, prune, archive prune), and a collection and a
    `malloc_trim` after each, whose pages the next call faulted in again,
    were ~8% of the process's samples under bench/load.py, on the CPU the
    statements share the machine's caches with (docs/performance.md)."""
    try:
        return calls.get(timeout=GIVE_BACK_AFTER)
    except queue.Empty:
        _give_back()
        return calls.get()


given_back = 0  # times _give_back ran (for tests)


def _give_back() -> None:
    """The call's memory back to the system: kept between jobs, this process
    should hold its imports, not the last job's buffers."""
    import pyarrow as pa

    global given_back
    given_back += 1
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


if __name__ == "__main__":
    main(sys.argv[1:])
