"""Background work runs at a lower OS priority than the work a client waits for.

On 2 CPUs a backup's copy, hash and content-check threads used to take the
cores while a single-row INSERT's thread was runnable but waiting for one
(9 ms per INSERT on average, 41 ms at worst, measured from
/proc/<pid>/task/*/schedstat). Linux schedules threads, and a thread's nice
value is its own: a background thread that lowers itself (`lower_this_thread`)
gets a CPU only as much as normal-priority threads leave, and every thread it
starts afterwards inherits the lower priority (a transfer's worker pool,
which also hashes). A lowered thread never raises itself again (an unprivileged process
may not), so only threads that do nothing but background work lower
themselves: the job pool's, the archiver's.

The trade-off: when normal-priority work keeps both CPUs busy, background work
slows down (nice 10 gets ~1/10 of a CPU against one busy normal thread), and a
lowered thread that holds a lock writers wait for holds it longer: a backup's
snapshot held every table lock of its namespace 18-31 ms (1-2 ms of CPU)
where it had held it 1-2 ms. So a short section that takes such locks runs
through `at_normal_priority`, on a thread that was never lowered. The level is the
server's `[jobs] background_nice` (0 turns this off); see docs/performance.md
for what each level measured.

A job being stopped must not crawl: KILL JOB promises the job stops within a
second, and next to busy processes a nice-10 thread gets ~1% of a CPU (a
killed backup took 1.8 s to clean up beside four busy loops). So KILL and
PAUSE JOB call `raise_lowered_threads`, which puts every thread at the
background level back to the process's own level (where the OS lets it:
root, CAP_SYS_NICE or RLIMIT_NICE; elsewhere nothing changes). Threads that
do background work lower themselves again when they take their next piece of
work (`lowered`), so only the jobs running at that moment finish at normal
priority."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

DEFAULT_NICE = 10
MAX_NICE = 19

_nice = DEFAULT_NICE
_base = 0  # the process's own nice value (what raise_lowered_threads returns to)
# Only Linux gives each thread its own nice value through PRIO_PROCESS and a
# thread id; elsewhere that id could name some other process.
_LINUX = sys.platform.startswith("linux")


_normal: ThreadPoolExecutor | None = None
_normal_guard = threading.Lock()


def set_background_nice(nice: int) -> None:
    """The nice value `lower_this_thread` gives (0: leave threads alone). Set once
    by the server from its config (from a normal-priority thread), before
    background threads start."""
    global _nice, _normal, _base
    if not 0 <= nice <= MAX_NICE:
        raise ValueError(f"background nice must be 0..{MAX_NICE}, not {nice}")
    _nice = nice
    _base = thread_nice()
    with _normal_guard:
        if _normal is None and _base == 0:
            pool = ThreadPoolExecutor(1, thread_name_prefix="cairn-normal")
            # Its one thread starts now, from this thread, so it is not lowered.
            pool.submit(lambda: None).result()
            _normal = pool


def at_normal_priority(fn: Callable[[], T]) -> T:
    """`fn()`, on a normal-priority thread if the caller was lowered (else right
    here). For short sections that hold locks statements wait for; `fn` must
    not wait for anything the calling thread holds."""
    pool = _normal
    if pool is None or not _LINUX or thread_nice() <= 0:
        return fn()
    return pool.submit(fn).result()


def background_nice() -> int:
    return _nice


def thread_nice(native_id: int | None = None) -> int:
    """The nice value of a thread (this one by default); 0 where unknown."""
    if not _LINUX:
        return 0
    try:
        return os.getpriority(os.PRIO_PROCESS, native_id or threading.get_native_id())
    except OSError:
        return 0


BREATHE_SECONDS = 0.0005  # Python work a Breather lets run between its pauses
BREATHE_PAUSE = 0.00005  # how long it gives the GIL away


class Breather:
    """Call it after each step of a loop of Python work on a thread beside the
    event loop: once the steps since its last pause took BREATHE_SECONDS, it
    gives the GIL away for BREATHE_PAUSE. A thread that wants the GIL gets it
    only when its holder lets go, and a thread running Python (no system
    call, no pyarrow call that lets go) keeps it until the switch interval (5
    ms) forces it out: a BACKUP's per-table steps over 50 tables held it in
    5 ms stretches, and the p99 of the statements beside it (the store
    ablated) went from 1.2 to 1.4 times the quiet one (docs/performance.md). A sleep, not `sleep(0)`:
    a thread that lets go and asks again at once has the GIL back before a
    waiting thread wakes. A no-op on the main thread."""

    def __init__(self, every: float = BREATHE_SECONDS) -> None:
        self.every = every
        self.on = threading.current_thread() is not threading.main_thread()
        self.last = time.perf_counter()

    def __call__(self) -> None:
        if self.on and time.perf_counter() - self.last >= self.every:
            time.sleep(BREATHE_PAUSE)
            self.last = time.perf_counter()


def lower_this_thread() -> bool:
    """Give the calling thread (and the threads it starts from now on) the
    background nice value. Never raises: where the OS has no per-thread
    priority, or refuses, the thread runs on as it was. True if it is now at
    the background level (or lower)."""
    if _nice == 0 or not _LINUX:
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < _nice:
            # On Linux PRIO_PROCESS with a thread id names that one thread.
            os.setpriority(os.PRIO_PROCESS, tid, _nice)
        return True
    except OSError:
        return False


def lowered(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, run at the background level by whichever thread calls it (for work
    handed to a pool whose threads may have been raised since they started)."""
    def run(*args: object, **kwargs: object) -> T:
        lower_this_thread()
        return fn(*args, **kwargs)
    return run


_started_normal = threading.local()


def mark_started_normal() -> None:
    """On a thread started at normal priority for a lowered job (a transfer
    pool's, inflight.py): `lower_if_started_normal` lowers it."""
    _started_normal.on = True


def lower_if_started_normal() -> None:
    """Before CPU work on a thread that may have started at normal priority for
    a lowered job: lower it (for good; other threads are left as they are)."""
    if getattr(_started_normal, "on", False):
        lower_this_thread()


def raise_lowered_threads() -> int:
    """Every thread of this process at the background level back to the
    process's own level, so a job being killed or paused finishes its clean-up
    at normal priority. Needs the right to raise a priority (root,
    CAP_SYS_NICE, RLIMIT_NICE); without it nothing changes. How many threads
    were raised."""
    if _nice == 0 or not _LINUX or _base >= _nice:
        return 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0
    raised = 0
    for name in tids:
        try:
            tid = int(name)
            if os.getpriority(os.PRIO_PROCESS, tid) >= _nice:
                os.setpriority(os.PRIO_PROCESS, tid, _base)
                raised += 1
        except (OSError, ValueError):
            continue  # gone meanwhile, or not allowed
    return raised


def may_leave_sched_idle(nice: int) -> bool:
    """Whether this process may move a thread of its own from SCHED_IDLE back to
    normal scheduling at `nice`: with CAP_SYS_NICE, or an RLIMIT_NICE that
    allows `nice` (Linux treats SCHED_IDLE as nice 20; sched_setscheduler(2)).
    A soft RLIMIT_NICE below what is needed is raised to it where the hard
    limit allows (as the server would have to anyway)."""
    import resource

    try:
        with open("/proc/self/status") as f:
            caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        caps = 0
    if caps >> 23 & 1:  # CAP_SYS_NICE
        return True
    need = 20 - nice
    soft, hard = resource.getrlimit(resource.RLIMIT_NICE)

    def allows(limit: int) -> bool:
        return limit == resource.RLIM_INFINITY or limit >= need

    if not allows(soft) and allows(hard):  # a soft limit may go up to the hard one
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NICE, (need, hard))
            soft = need
    return allows(soft)


def threads(pid: int) -> list[int]:
    """The thread ids of process `pid` (none once it has ended)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except (OSError, ValueError):
        return []


def lift(clock: SchedClock, nice: int, cpus: set[int]) -> None:
    """Every thread of `clock`'s process out of SCHED_IDLE at `nice`, on
    `cpus` where it may be (storage/jobproc.py)."""
    def up(tid: int) -> None:
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            if isinstance(exc, ProcessLookupError):
                raise  # gone: SchedClock.each lists them again
        with contextlib.suppress(OSError):  # lifted on every CPU beats not lifted
            os.sched_setaffinity(tid, cpus)

    clock.each(up)


def back_to_idle(clock: SchedClock, cpus: set[int]) -> None:
    """Every thread of `clock`'s process into SCHED_IDLE, on `cpus` where it
    may be; OSError where one may not be lowered."""
    def down(tid: int) -> None:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        with contextlib.suppress(OSError):  # idle on half of them is no harm
            os.sched_setaffinity(tid, cpus)

    clock.each(down)


class SchedClock:
    """(ns on a CPU, ns runnable waiting for one) summed over the threads of
    process `pid` (/proc/<pid>/task/<tid>/schedstat); threads gone meanwhile
    count for nothing.

    A server thread samples a job process this way every 0.1 s
    (storage/jobproc.py), and it takes the GIL back after every system call
    (and `os.listdir` after every entry): each take can keep the event loop
    waiting. Opened with `open()` each time, a sample of a job process's seven
    threads made ~50 of them (the listing, then open, two fstats, two reads
    and close per file). Now each file stays open and is read again with one
    `pread`, and the threads are listed again only when the process's thread
    count (/proc/<pid>/stat, also kept open) changed or a thread's file
    stopped answering: ~8 a sample. Close it when done."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fds: dict[int, int] = {}  # tid -> its schedstat, open
        self._stat: int | None = None  # /proc/<pid>/stat, open

    def sample(self) -> tuple[int, int]:
        if self._thread_count() != len(self._fds):
            self._list()
        ran, waited, whole = self._read()
        if not whole:  # a thread ended (and maybe another started) since the listing
            self._list()
            ran, waited, _ = self._read()
        return ran, waited

    def each(self, fn: Callable[[int], None]) -> None:
        """`fn(tid)` for every thread of the process: those listed last,
        listed again only when its thread count changed (one pread) or `fn`
        found one gone (ProcessLookupError: one ended, maybe another started,
        the count the same). Listing /proc/<pid>/task takes the GIL back after
        every entry: ~15 takes for a job process, twice a lifted call
        (storage/jobproc.py `lift`, `_settle`), beside the event loop."""
        if self._thread_count() != len(self._fds):
            self._list()
        done: set[int] = set()
        for _ in range(3):  # a thread on its way out may stay listed a moment
            gone = False
            for tid in [t for t in self._fds if t not in done]:
                try:
                    fn(tid)
                except ProcessLookupError:
                    gone = True
                else:
                    done.add(tid)
            if not gone:
                return
            self._list()

    def _thread_count(self) -> int:
        try:
            if self._stat is None:
                self._stat = os.open(f"/proc/{self.pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            # num_threads: the 20th field, the 18th after the name's ")"
            return int(os.pread(self._stat, 1024, 0).rsplit(b")", 1)[1].split()[17])
        except (OSError, ValueError, IndexError):
            return -1

    def _list(self) -> None:
        tids = threads(self.pid)
        for gone in self._fds.keys() - set(tids):
            with contextlib.suppress(OSError):
                os.close(self._fds.pop(gone))
        for tid in tids:
            if tid not in self._fds:
                with contextlib.suppress(OSError):
                    self._fds[tid] = os.open(f"/proc/{self.pid}/task/{tid}/schedstat",
                                             os.O_RDONLY | os.O_CLOEXEC)

    def _read(self) -> tuple[int, int, bool]:
        """The sums, and whether every thread's file answered."""
        ran = waited = 0
        whole = True
        for fd in self._fds.values():
            try:
                on_cpu, queued = os.pread(fd, 128, 0).split()[:2]
            except (OSError, ValueError):
                whole = False
                continue
            ran, waited = ran + int(on_cpu), waited + int(queued)
        return ran, waited, whole

    def close(self) -> None:
        for fd in [*self._fds.values(), *([self._stat] if self._stat is not None else [])]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._stat = None
